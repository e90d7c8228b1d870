import { describe, expect, it } from 'vitest';
import { TweedieError } from '../../src/errors.js';
import { negotiateFormat } from '../../src/imaging/codec.js';

function notAcceptable(fn: () => unknown): TweedieError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TweedieError);
    expect((err as TweedieError).code).toBe('TW_NOT_ACCEPTABLE');
    expect((err as TweedieError).statusCode).toBe(406);
    return err as TweedieError;
  }
  throw new Error('expected a 406');
}

describe('negotiateFormat', () => {
  it('defaults to PNG when Accept is absent, empty or a wildcard', () => {
    for (const accept of [undefined, '', '*/*', 'image/*', 'image/*, */*;q=0.1']) {
      expect(negotiateFormat(accept)).toEqual({ format: 'png', contentType: 'image/png' });
    }
  });

  it('follows Accept types and q-values', () => {
    expect(negotiateFormat('image/webp')).toEqual({ format: 'webp', contentType: 'image/webp' });
    expect(negotiateFormat('image/jpeg;q=0.5, image/webp;q=0.9').format).toBe('webp');
    expect(negotiateFormat('text/html, application/xhtml+xml, image/jpeg;q=0.1').format).toBe('jpeg');
    expect(negotiateFormat('IMAGE/TIFF').format).toBe('tiff');
    expect(negotiateFormat('image/jpg').contentType).toBe('image/jpeg');
  });

  it('lets the most specific range decide, so q=0 excludes a type', () => {
    expect(negotiateFormat('image/png;q=0, image/*').format).toBe('webp');
    expect(negotiateFormat('image/*;q=0.5, image/tiff').format).toBe('tiff');
    expect(negotiateFormat('*/*;q=0.2, image/png;q=0.1').format).not.toBe('png');
  });

  it('lets the format parameter win over Accept', () => {
    expect(negotiateFormat('image/png', 'jpg')).toEqual({ format: 'jpeg', contentType: 'image/jpeg' });
    expect(negotiateFormat(undefined, 'png16')).toEqual({ format: 'png16', contentType: 'image/png' });
    expect(negotiateFormat('application/json', 'TIF').format).toBe('tiff');
  });

  it('refuses what it cannot produce with 406', () => {
    notAcceptable(() => negotiateFormat('application/json'));
    notAcceptable(() => negotiateFormat('image/png;q=0'));
    notAcceptable(() => negotiateFormat('image/gif, image/bmp'));
    const err = notAcceptable(() => negotiateFormat('*/*', 'bmp'));
    expect(err.message).toMatch(/bmp/);
  });
});
