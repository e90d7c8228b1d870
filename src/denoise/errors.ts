/**
 * The noise level of `level=auto` could not be read from the image: no 8x8 tile is bright enough for the family's
 * variance-vs-mean relation (an all-black image for Poisson or Gamma), so there is nothing to estimate from. Mapped
 * to 422 TW_UNPROCESSABLE (src/domain-errors.ts): the client should give the level.
 */
export class NoiseLevelUnknownError extends Error {
  constructor(family: string) {
    super(
      `The ${family} noise level cannot be estimated from this image: no 8x8 tile is bright enough to read it ` +
        'from (all dark or saturated). Give the level (level=...)',
    );
    this.name = 'NoiseLevelUnknownError';
  }
}
