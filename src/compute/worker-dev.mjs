// Worker entry when running from TypeScript sources (tests, `tsx`): install tsx's loader in this thread, then load
// the real worker. Compiled builds use dist/src/compute/worker.js directly.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./worker.ts');
export default worker.default;
