/**
 * The one eps-network interface of the diffusion code (diffusers' "model"): eps_theta(x_t, t) for a batch x_t
 * [n, h, w, c] in the model's range and per-item float timesteps t [n]. EPS-AD (src/adversarial/eps.ts
 * EpsNetwork) uses this type; RED-Diff takes the DDPM U-Net or such a function.
 */
type Tensor = import('@tensorflow/tfjs').Tensor;

export type EpsModel = (xt: Tensor, t: Tensor) => Tensor;
