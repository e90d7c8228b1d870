/**
 * The structure of an inpainting mask, as far as RED-Diff's settings depend on it: how deep its missing regions are.
 *
 * A mask's hole radius is the largest chessboard (8-neighbour) distance from a missing pixel to the nearest observed
 * one: 1 when every missing pixel touches an observed one, 2 when some sit in a 3x3 block of missing pixels, r for a
 * (2r) x (2r) or (2r - 1) x (2r - 1) box. Random-pixel masks stay small (50% missing on 64x64 or 256x256: 2, rarely
 * 3; 80%: 3 or 4) while a box of side s gives ceil(s / 2) (a 32x32 hole: 16). A classical interpolation (the
 * 'smooth' start) is already close to the truth where the radius is small, and RED-Diff from there should only
 * refine it (few, small steps from a low timestep); deep in a large hole the interpolation is a blur that the prior
 * has to replace, which takes the noise of a high timestep and larger steps. The prior's manifest says where the
 * switch lies (`extra.redDiff.holes.minRadius`, see modelRedDiffDefaults in src/operations/restore/task.ts).
 */

/**
 * The hole radius of `mask` (1 observed, 0 missing; values > 0.5 count as observed, as the fills do), h x w, or a
 * batch of such masks (the largest radius over them). 0 without missing pixels; Infinity when an image has no
 * observed pixel at all.
 */
export function holeRadius(mask: Float32Array, height: number, width: number): number {
  const size = height * width;
  if (size === 0 || mask.length % size !== 0)
    throw new RangeError(`holeRadius: ${mask.length} values are not a multiple of ${height}x${width}`);
  let worst = 0;
  const d = new Float64Array(size);
  for (let offset = 0; offset < mask.length; offset += size) {
    let observed = 0;
    for (let i = 0; i < size; i++) {
      const seen = mask[offset + i] > 0.5;
      d[i] = seen ? 0 : Number.POSITIVE_INFINITY;
      if (seen) observed++;
    }
    if (observed === 0) return Number.POSITIVE_INFINITY;
    if (observed === size) continue;
    // Two-pass chamfer transform with unit weights on the 8 neighbours: exact for the chessboard distance.
    for (let r = 0; r < height; r++)
      for (let c = 0; c < width; c++) {
        const i = r * width + c;
        if (d[i] === 0) continue;
        let v = d[i];
        if (c > 0) v = Math.min(v, d[i - 1] + 1);
        if (r > 0) {
          v = Math.min(v, d[i - width] + 1);
          if (c > 0) v = Math.min(v, d[i - width - 1] + 1);
          if (c < width - 1) v = Math.min(v, d[i - width + 1] + 1);
        }
        d[i] = v;
      }
    for (let r = height - 1; r >= 0; r--)
      for (let c = width - 1; c >= 0; c--) {
        const i = r * width + c;
        if (d[i] === 0) continue;
        let v = d[i];
        if (c < width - 1) v = Math.min(v, d[i + 1] + 1);
        if (r < height - 1) {
          v = Math.min(v, d[i + width] + 1);
          if (c < width - 1) v = Math.min(v, d[i + width + 1] + 1);
          if (c > 0) v = Math.min(v, d[i + width - 1] + 1);
        }
        d[i] = v;
        if (v > worst) worst = v;
      }
  }
  return worst;
}
