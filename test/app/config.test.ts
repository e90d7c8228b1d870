import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('config', () => {
  it('has the embedded defaults', () => {
    const cfg = loadConfig({});
    expect(cfg.PORT).toBe(8080);
    expect(cfg.HOST).toBe('0.0.0.0');
    expect(cfg.TFJS_BACKEND).toBe('auto');
    expect(cfg.MODELS_DIR).toBe('models');
    expect(cfg.ENABLE_TEST_TASKS).toBe(false);
  });

  it('coerces numbers and booleans, treats empty as unset', () => {
    const cfg = loadConfig({ PORT: '9000', GRAPHIQL: 'true', WORKERS: '', QUEUE_MAX: '3' });
    expect(cfg.PORT).toBe(9000);
    expect(cfg.GRAPHIQL).toBe(true);
    expect(cfg.WORKERS).toBe(0);
    expect(cfg.QUEUE_MAX).toBe(3);
  });

  it('names every bad variable', () => {
    try {
      loadConfig({ PORT: 'eighty', TFJS_BACKEND: 'cuda', QUEUE_MAX: '-1' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).toContain('PORT="eighty"');
      expect(msg).toContain('TFJS_BACKEND="cuda"');
      expect(msg).toContain('QUEUE_MAX="-1"');
    }
  });
});
