import { describe, expect, it } from 'vitest';
import {
  epsFromX0,
  linearSchedule,
  posteriorCoefficients,
  qSample,
  scoreFromEps,
  snr,
  stridedTimesteps,
  tweedieX0,
} from '../../src/diffusion/schedule.js';
import { Rng } from '../../src/util/random.js';

const schedule = linearSchedule();

describe('linear DDPM schedule', () => {
  it('has the DDPM betas and a strictly decreasing alphaBar', () => {
    expect(schedule.timesteps).toBe(1000);
    expect(schedule.betas[0]).toBeCloseTo(1e-4, 15);
    expect(schedule.betas[999]).toBeCloseTo(0.02, 15);
    expect(schedule.betas[500] - schedule.betas[499]).toBeCloseTo((0.02 - 1e-4) / 999, 15);
    for (let t = 1; t < 1000; t++) {
      expect(schedule.alphaBars[t]).toBeLessThan(schedule.alphaBars[t - 1]);
      expect(snr(schedule, t)).toBeLessThan(snr(schedule, t - 1));
    }
    expect(schedule.alphaBars[0]).toBeCloseTo(1 - 1e-4, 15);
    // The well-known endpoint of the linear schedule: alphaBar_T ~ 4.0e-5 (almost pure noise).
    expect(schedule.alphaBars[999]).toBeGreaterThan(3e-5);
    expect(schedule.alphaBars[999]).toBeLessThan(5e-5);
    let product = 1;
    for (let t = 0; t < 1000; t++) product *= 1 - schedule.betas[t];
    expect(schedule.alphaBars[999]).toBeCloseTo(product, 15);
    for (const t of [0, 10, 999])
      expect(schedule.sqrtAlphaBars[t] ** 2 + schedule.sqrtOneMinusAlphaBars[t] ** 2).toBeCloseTo(1, 14);
  });

  it('rejects invalid configurations and timesteps', () => {
    expect(() => linearSchedule({ timesteps: 0 })).toThrow(RangeError);
    expect(() => linearSchedule({ betaStart: 0.1, betaEnd: 0.01 })).toThrow(RangeError);
    expect(() => qSample(schedule, new Float64Array(2), new Float64Array(2), 1000)).toThrow(RangeError);
    expect(() => qSample(schedule, new Float64Array(2), new Float64Array(3), 5)).toThrow(RangeError);
  });

  it('recovers x0 and eps exactly from x_t (Tweedie with the true noise is the identity)', () => {
    const rng = new Rng(3);
    const x0 = rng.fillNormal(new Float64Array(50));
    const eps = rng.fillNormal(new Float64Array(50));
    for (const t of [0, 1, 250, 999]) {
      const xt = qSample(schedule, x0, eps, t);
      const a = Math.sqrt(schedule.alphaBars[t]);
      expect(xt[7]).toBeCloseTo(a * x0[7] + Math.sqrt(1 - a * a) * eps[7], 12);
      const x0hat = tweedieX0(schedule, xt, eps, t);
      const epsHat = epsFromX0(schedule, xt, x0, t);
      for (let i = 0; i < 50; i++) {
        // At t = 999 dividing by sqrt(alphaBar) ~ 6e-3 amplifies rounding ~160x.
        expect(x0hat[i]).toBeCloseTo(x0[i], t === 999 ? 9 : 12);
        expect(epsHat[i]).toBeCloseTo(eps[i], 10);
      }
    }
  });

  it('gives the score of the Gaussian perturbation kernel', () => {
    // For q(x_t | x0) = N(sqrt(ab) x0, (1-ab) I), grad log q = -(x_t - sqrt(ab) x0)/(1-ab) = -eps/sqrt(1-ab).
    const x0 = Float64Array.from([0.3, -0.7]);
    const eps = Float64Array.from([1.5, -0.2]);
    const t = 400;
    const ab = schedule.alphaBars[t];
    const xt = qSample(schedule, x0, eps, t);
    const score = scoreFromEps(schedule, eps, t);
    for (let i = 0; i < 2; i++) expect(score[i]).toBeCloseTo(-(xt[i] - Math.sqrt(ab) * x0[i]) / (1 - ab), 12);
  });

  it('strides timesteps in descending order from T-1 to 0', () => {
    const steps = stridedTimesteps(schedule, 100);
    expect(steps).toHaveLength(100);
    expect(steps[0]).toBe(999);
    expect(steps[99]).toBe(0);
    for (let i = 1; i < steps.length; i++) expect(steps[i]).toBeLessThan(steps[i - 1]);
    expect(stridedTimesteps(schedule, 1000)).toEqual(Array.from({ length: 1000 }, (_, i) => 999 - i));
    expect(() => stridedTimesteps(schedule, 1001)).toThrow(RangeError);
  });

  it('posterior coefficients reduce to DDPM beta-tilde and match the Gaussian posterior', () => {
    const t = 300;
    const { coefX0, coefXt, variance } = posteriorCoefficients(schedule, t, t - 1);
    const ab = schedule.alphaBars;
    expect(variance).toBeCloseTo((schedule.betas[t] * (1 - ab[t - 1])) / (1 - ab[t]), 15);
    expect(coefX0).toBeCloseTo((Math.sqrt(ab[t - 1]) * schedule.betas[t]) / (1 - ab[t]), 15);
    expect(coefXt).toBeCloseTo((Math.sqrt(schedule.alphas[t]) * (1 - ab[t - 1])) / (1 - ab[t]), 15);
    // Respaced pair: x_prev | x_t, x0 must be consistent with the marginals: E[x_prev] = sqrt(ab_prev) x0 when
    // x_t = sqrt(ab_t) x0, i.e. coefX0 + coefXt sqrt(ab_t) = sqrt(ab_prev) (mean over eps), and the total variance
    // coefXt^2 (1 - ab_t) + variance = 1 - ab_prev.
    const prev = 120;
    const p = posteriorCoefficients(schedule, 700, prev);
    expect(p.coefX0 + p.coefXt * Math.sqrt(ab[700])).toBeCloseTo(Math.sqrt(ab[prev]), 12);
    expect(p.coefXt ** 2 * (1 - ab[700]) + p.variance).toBeCloseTo(1 - ab[prev], 12);
    const last = posteriorCoefficients(schedule, 5, -1);
    expect(last.variance).toBeCloseTo(0, 15);
    expect(last.coefX0).toBeCloseTo(1, 12);
  });
});
