/**
 * Fast conv2d gradient kernels for the TF.js wasm backend.
 *
 * tfjs-backend-wasm 4.22 registers no `Conv2DBackpropFilter` kernel (training a conv net on wasm throws) and its
 * `Conv2DBackpropInput` is a naive loop. Both gradients are themselves convolutions, so we express them with the
 * backend's own forward `Conv2D` (XNNPACK, SIMD):
 *
 * - input gradient: dx = conv2d(dy dilated by the stride, filter flipped in space with in/out channels swapped),
 *   padded by (kernel - 1 - forward pad) on the leading side;
 * - filter gradient: dw = conv2d(x with batch and channel axes swapped, dy used as the filter with dilation = stride),
 *   i.e. [C_in, H, W, N] (*) [H_out, W_out, N, C_out] -> [C_in, KH, KW, C_out], then transposed to [KH, KW, C_in, C_out].
 *
 * Every stride, 'same' / 'valid' / numeric / explicit padding, rounding mode and both data formats are handled
 * (NCHW by transposing); padding that would be negative is turned into a crop. Conv2D gradients never carry a
 * dilation (tfjs refuses dilated conv2d gradients), so none is needed here.
 *
 * The kernels run other wasm kernels directly through the kernel registry (backend level, no engine tensors), and
 * free every intermediate with `backend.disposeData`, so nothing leaks into `tf.memory()`.
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

type Tf = typeof import('@tensorflow/tfjs');
type PadAttr =
  | 'valid'
  | 'same'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;

interface WasmBackendLike {
  disposeData(dataId: object, force?: boolean): boolean;
}

const BACKEND = 'wasm';
const MARK = Symbol.for('tweedie.wasmGradKernel');
/** The kernels wasm shipped with before we replaced them, so the replacement can be undone (benchmarks, tests). */
const replacedKernels = new Map<string, KernelConfig | undefined>();

/** Runs registered wasm kernels at backend level and remembers intermediates so they can all be freed at once. */
class KernelScope {
  private readonly temporaries: TensorInfo[] = [];
  constructor(
    private readonly tf: Tf,
    private readonly backend: WasmBackendLike,
  ) {}

  run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap): TensorInfo {
    const kernel = this.tf.getKernel(kernelName, BACKEND);
    if (kernel == null) throw new Error(`wasm grad kernels: wasm kernel '${kernelName}' is not registered`);
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.backend as never }) as TensorInfo;
    this.temporaries.push(out);
    return out;
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  /** Removes `crop` rows/cols from the spatial axes (1 and 2) of an NHWC tensor; a no-op when nothing is cropped. */
  cropSpatial(x: TensorInfo, top: number, bottom: number, left: number, right: number): TensorInfo {
    if (top === 0 && bottom === 0 && left === 0 && right === 0) return x;
    const [n, h, w, c] = x.shape;
    return this.run(
      'Slice',
      { x },
      { begin: [0, top, left, 0], size: [n, h - top - bottom, w - left - right, c] },
    );
  }

  /** Frees every intermediate except `keep` (the kernel's output, now owned by the engine). */
  disposeAllExcept(keep: TensorInfo): void {
    for (const t of this.temporaries) {
      if (t !== keep) this.backend.disposeData(t.dataId);
    }
    this.temporaries.length = 0;
  }
}

function pairOf(value: number | [number, number]): [number, number] {
  return typeof value === 'number' ? [value, value] : value;
}

/** Splits a (possibly negative) pad amount into the part padded by the conv and the part cropped beforehand. */
function padOrCrop(amount: number): { pad: number; crop: number } {
  return amount >= 0 ? { pad: amount, crop: 0 } : { pad: 0, crop: -amount };
}

function explicitPadding(top: number, bottom: number, left: number, right: number): PadAttr {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

function makeConv2DBackpropInput(tf: Tf): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as {
      strides: number | [number, number];
      pad: PadAttr;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode: RoundingMode;
      inputShape: [number, number, number, number];
    };
    const channelsFirst = dataFormat === 'NCHW';
    const info = tf.backend_util.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      tf.backend_util.convertConv2DDataFormat(dataFormat),
    );
    const [strideH, strideW] = pairOf(strides);
    const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
    const scope = new KernelScope(tf, backend as unknown as WasmBackendLike);

    let dyNhwc = channelsFirst ? scope.transpose(dy, [0, 2, 3, 1]) : dy;
    const [n, outH, outW, outC] = dyNhwc.shape;
    // Dilate dy by the stride: each value followed by (stride - 1) zeros along H and W.
    if (strideH > 1 || strideW > 1) {
      const spread = scope.reshape(dyNhwc, [n, outH, 1, outW, 1, outC]);
      const padded = scope.run(
        'PadV2',
        { x: spread },
        {
          paddings: [
            [0, 0],
            [0, 0],
            [0, strideH - 1],
            [0, 0],
            [0, strideW - 1],
            [0, 0],
          ],
          constantValue: 0,
        },
      );
      dyNhwc = scope.reshape(padded, [n, outH * strideH, outW * strideW, outC]);
    }
    const dilatedH = dyNhwc.shape[1];
    const dilatedW = dyNhwc.shape[2];
    const top = padOrCrop(kh - 1 - info.padInfo.top);
    const left = padOrCrop(kw - 1 - info.padInfo.left);
    // Chosen so the conv output has exactly the input's spatial size.
    const bottom = padOrCrop(h + kh - 1 - dilatedH - (kh - 1 - info.padInfo.top));
    const right = padOrCrop(w + kw - 1 - dilatedW - (kw - 1 - info.padInfo.left));
    const cropped = scope.cropSpatial(dyNhwc, top.crop, bottom.crop, left.crop, right.crop);

    // [KH, KW, Cin, Cout] -> flipped in space, then [KH, KW, Cout, Cin]: a forward filter from Cout to Cin.
    const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const flippedSwapped = scope.transpose(flipped, [0, 1, 3, 2]);
    let dx = scope.run(
      'Conv2D',
      { x: cropped, filter: flippedSwapped },
      {
        strides: [1, 1],
        pad: explicitPadding(top.pad, bottom.pad, left.pad, right.pad),
        dataFormat: 'NHWC',
        dilations: [1, 1],
        dimRoundingMode: undefined as never,
      },
    );
    if (channelsFirst) dx = scope.transpose(dx, [0, 3, 1, 2]);
    scope.disposeAllExcept(dx);
    return dx;
  };
}

function makeConv2DBackpropFilter(tf: Tf): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
      strides: number | [number, number];
      pad: PadAttr;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode: RoundingMode;
      filterShape: [number, number, number, number];
    };
    const channelsFirst = dataFormat === 'NCHW';
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      tf.backend_util.convertConv2DDataFormat(dataFormat),
    );
    const [strideH, strideW] = pairOf(strides);
    const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
    const scope = new KernelScope(tf, backend as unknown as WasmBackendLike);

    // x as a batch of C_in single images with N channels: [C_in, H, W, N].
    const xSwapped = scope.transpose(x, channelsFirst ? [1, 2, 3, 0] : [3, 1, 2, 0]);
    // dy as a filter of spatial size [H_out, W_out] mapping N channels to C_out: [H_out, W_out, N, C_out].
    const dyFilter = scope.transpose(dy, channelsFirst ? [2, 3, 0, 1] : [1, 2, 0, 3]);
    const [outH, outW] = dyFilter.shape;
    const effectiveH = (outH - 1) * strideH + 1;
    const effectiveW = (outW - 1) * strideW + 1;
    const top = padOrCrop(info.padInfo.top);
    const left = padOrCrop(info.padInfo.left);
    // Chosen so the conv output has exactly the kernel's spatial size; rows the forward pass never read are cropped.
    const bottom = padOrCrop(kh - 1 + effectiveH - h - info.padInfo.top);
    const right = padOrCrop(kw - 1 + effectiveW - w - info.padInfo.left);
    const cropped = scope.cropSpatial(xSwapped, top.crop, bottom.crop, left.crop, right.crop);
    const gradSwapped = scope.run(
      'Conv2D',
      { x: cropped, filter: dyFilter },
      {
        strides: [1, 1],
        pad: explicitPadding(top.pad, bottom.pad, left.pad, right.pad),
        dataFormat: 'NHWC',
        dilations: [strideH, strideW],
        dimRoundingMode: undefined as never,
      },
    );
    // [C_in, KH, KW, C_out] -> [KH, KW, C_in, C_out]
    const dw = scope.transpose(gradSwapped, [1, 2, 0, 3]);
    scope.disposeAllExcept(dw);
    return dw;
  };
}

function isOurs(config: KernelConfig | undefined): boolean {
  return config != null && (config as unknown as Record<symbol, unknown>)[MARK] === true;
}

function install(tf: Tf, kernelName: string, kernelFunc: KernelFunc): void {
  const existing = tf.getKernel(kernelName, BACKEND);
  if (isOurs(existing)) return;
  if (!replacedKernels.has(kernelName)) replacedKernels.set(kernelName, existing);
  // Unregister first: registerKernel would otherwise warn that the kernel is already registered.
  if (existing != null) tf.unregisterKernel(kernelName, BACKEND);
  const config = { kernelName, backendName: BACKEND, kernelFunc, [MARK]: true } as KernelConfig;
  tf.registerKernel(config);
}

/**
 * Registers the fast `Conv2DBackpropInput` and `Conv2DBackpropFilter` kernels for the 'wasm' backend.
 * Idempotent. Needs the wasm backend package to have been imported (it registers the forward kernels we build on).
 */
export function registerWasmGradKernels(tf: Tf): void {
  install(tf, 'Conv2DBackpropInput', makeConv2DBackpropInput(tf));
  install(tf, 'Conv2DBackpropFilter', makeConv2DBackpropFilter(tf));
}

/** Restores the kernels wasm shipped with (none for the filter gradient). For benchmarks and tests. */
export function unregisterWasmGradKernels(tf: Tf): void {
  for (const [kernelName, original] of replacedKernels) {
    // Whatever is registered now (ours, or something a caller swapped in) gives way to the original.
    if (tf.getKernel(kernelName, BACKEND) != null) tf.unregisterKernel(kernelName, BACKEND);
    if (original != null) tf.registerKernel(original);
  }
  replacedKernels.clear();
}

/** Whether our gradient kernels are currently the registered wasm ones. */
export function wasmGradKernelsRegistered(tf: Tf): boolean {
  return (
    isOurs(tf.getKernel('Conv2DBackpropInput', BACKEND)) &&
    isOurs(tf.getKernel('Conv2DBackpropFilter', BACKEND))
  );
}
