/**
 * The one eps-network interface of the diffusion code (diffusers' "model"): eps_theta(x_t, t) for a batch x_t
 * [n, h, w, c] in the model's range and per-item float timesteps t [n]. EPS-AD (src/adversarial/eps.ts
 * EpsNetwork) and RED-Diff (src/diffusion/red-diff.ts, restore-pipeline.ts) take this type; `ddpmEpsModel` makes
 * one of the DDPM U-Net, and tests pass analytic ones.
 */
import { predictEps } from './unet.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export type EpsModel = (xt: Tensor, t: Tensor) => Tensor;

/** The DDPM U-Net of src/diffusion (inputs [x_t, t]) as an EpsModel; each call returns a tensor the caller disposes. */
export function ddpmEpsModel(tf: Tf, model: LayersModel): EpsModel {
  return (xt, t) => predictEps(tf, model, xt, t);
}
