/**
 * Every operation that can run as a job. Importing this module registers them; the API (jobs plugin) and the
 * worker process (src/worker.ts) both import it, so a new operation is one `import` line here.
 */
import './denoise.js';
import './detect.js';
import './ot.js';
import './restore.js';
import './test-ops.js';

export { jobOperation, listJobOperations, registerJobOperation } from '../registry.js';
