/**
 * Reading a tensor's values out of a tf.tidy block.
 *
 * tf.tidy scans whatever its function returns for tensors to keep, and it walks arrays element by element: a
 * tidy that returns the tensor's values makes TF.js visit every value of the typed array (about 0.2 s for a 512x512
 * image on one core, more than the image's whole denoising network). So the tidy returns the tensor, and the
 * values are read and the tensor freed outside it.
 *
 * Reads are asynchronous (`await t.data()`): WebGPU in Node has no synchronous read-back, and on wasm/cpu the
 * values are the same. Serving code never reads synchronously: test/nn/no-sync-reads.test.ts.
 */
type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;

/** Runs `fn` in a tidy and returns the values of the tensor it returns; nothing it made stays allocated. */
export async function tidyValues(tf: Tf, fn: () => Tensor): Promise<Float32Array> {
  const tensor = tf.tidy(fn);
  try {
    return (await tensor.data()) as Float32Array;
  } finally {
    tensor.dispose();
  }
}
