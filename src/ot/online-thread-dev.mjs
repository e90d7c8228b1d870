// Helper-thread entry when running from TypeScript sources (tests, `tsx`): install tsx's loader in this thread,
// then load the real entry. Compiled builds use dist/src/ot/online-thread.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./online-thread.ts');
