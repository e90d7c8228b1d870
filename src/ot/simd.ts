/**
 * WebAssembly SIMD kernels for the kernel-domain Sinkhorn sweep: a dot product and an axpy on float64
 * rows, two lanes at a time (f64x2). V8 does not vectorise JavaScript loops; on the bench machine these are
 * 4-5x faster than the best scalar JavaScript loop, which is what lets the kernel path beat numpy/BLAS.
 *
 * The module is tiny, so it is assembled here from named opcodes rather than shipped as an opaque binary:
 *   dot(k, v, m) -> f64         sum_j k[j] * v[j]     (k, v byte offsets into the memory, m elements)
 *   axpy(w, k, out, m)          out[j] += w * k[j]
 *   expRow(out, c, g, m, s, t)  out[j] = exp(s + g[j] - t * c[j])   (the log-domain Sinkhorn inner loop)
 *   kernelSweep(K, bv, a, u, col, n, m)   a whole kernel-domain row sweep (dot + axpy per row) in one call
 *   costRow, expSum             the two passes of an online (matrix-free) soft-min row, cost from the points
 *   costExp                     the fused one-pass row of online Sinkhorn (unrolled variants for dims 1-4)
 * The exp kernels share one emitted exp (expOfStack) and its constants.
 * It imports its memory ("env"."mem"), so each workspace sizes its own and the GC frees it afterwards.
 * Where WebAssembly SIMD is unavailable, `simdKernels()` returns undefined and callers use plain loops.
 */

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const OP = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32Add: 0x6a,
  i32And: 0x71,
  i32Shl: 0x74,
  i32Mul: 0x6c,
  f64Div: 0xa3,
  f64Ne: 0x62,
  call: 0x10,
  if: 0x04,
  i32GeU: 0x4f,
  f64Add: 0xa0,
  f64Mul: 0xa2,
  f64Max: 0xa5,
  f64Load: 0x2b,
  i32Load: 0x28,
  f64Store: 0x39,
  f64Const: 0x44,
  void: 0x40,
} as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && byte & 0x40)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const simd = (code: number) => [0xfd, ...uleb(code)];
// Opcodes from the WebAssembly SIMD binary encoding (proposals/simd/BinarySIMD.md, final numbering).
const V = {
  load: simd(0x00),
  store: simd(0x0b),
  i64x2Splat: simd(0x12),
  f64x2Splat: simd(0x14),
  extractLane: (lane: number) => [...simd(0x21), lane],
  i32x4ShrS: simd(0xac),
  i32x4Sub: simd(0xb1),
  i64x2Shl: simd(0xcb),
  f64x2Add: simd(0xf0),
  f64x2Sub: simd(0xf1),
  f64x2Mul: simd(0xf2),
  f64x2Min: simd(0xf4),
  f64x2Max: simd(0xf5),
  f64x2Pmin: simd(0xf6),
  f64x2Pmax: simd(0xf7),
  i32x4Add: simd(0xae),
  i32x4Shl: simd(0xab),
  f64x2Sqrt: simd(0xef),
};

function f64Const(x: number): number[] {
  const bytes = new Uint8Array(new Float64Array([x]).buffer);
  return [OP.f64Const, ...bytes];
}
/** memarg: alignment hint 2^3 = 8 bytes (float64 alignment; v128 accesses need not be 16-aligned). */
const memarg = (offset = 0) => [3, ...uleb(offset)];
const get = (i: number) => [OP.localGet, i];
const set = (i: number) => [OP.localSet, i];
const tee = (i: number) => [OP.localTee, i];
const i32 = (v: number) => [OP.i32Const, ...sleb(v)];
const addr = (base: number, index: number) => [...get(base), ...get(index), OP.i32Add];

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}
function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}
function name(s: string): number[] {
  return vec([...s].map((c) => [c.charCodeAt(0)]));
}

/** `while (i < end) { body; i += step }` with i and end locals. */
function loopWhileBelow(i: number, end: number, step: number, body: number[]): number[] {
  return [
    OP.block,
    OP.void,
    OP.loop,
    OP.void,
    ...get(i),
    ...get(end),
    OP.i32GeU,
    OP.brIf,
    1,
    ...body,
    ...get(i),
    ...i32(step),
    OP.i32Add,
    ...set(i),
    OP.br,
    0,
    OP.end,
    OP.end,
  ];
}

// dot(k=0, v=1, m=2) locals: i=3 end=4 (i32), acc0=5 acc1=6 (v128), s=7 (f64). Byte offsets throughout.
const dotBody = [
  ...vec([
    [2, I32],
    [2, V128],
    [1, F64],
  ]),
  // end = (m & ~3) * 8: four doubles (two vectors, two accumulators to overlap the add latency) per step.
  ...get(2),
  ...i32(-4),
  OP.i32And,
  ...i32(3),
  OP.i32Shl,
  ...set(4),
  ...loopWhileBelow(3, 4, 32, [
    ...get(5),
    ...addr(0, 3),
    ...V.load,
    ...memarg(0),
    ...addr(1, 3),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...set(5),
    ...get(6),
    ...addr(0, 3),
    ...V.load,
    ...memarg(16),
    ...addr(1, 3),
    ...V.load,
    ...memarg(16),
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...set(6),
  ]),
  ...get(5),
  ...get(6),
  ...V.f64x2Add,
  ...set(5),
  ...get(5),
  ...V.extractLane(0),
  ...get(5),
  ...V.extractLane(1),
  OP.f64Add,
  ...set(7),
  // Scalar tail: end = m * 8.
  ...get(2),
  ...i32(3),
  OP.i32Shl,
  ...set(4),
  ...loopWhileBelow(3, 4, 8, [
    ...get(7),
    ...addr(0, 3),
    OP.f64Load,
    ...memarg(0),
    ...addr(1, 3),
    OP.f64Load,
    ...memarg(0),
    OP.f64Mul,
    OP.f64Add,
    ...set(7),
  ]),
  ...get(7),
  OP.end,
];

// axpy(w=0 f64, k=1, out=2, m=3) locals: i=4 end=5 (i32), ws=6 (v128).
const axpyBody = [
  ...vec([
    [2, I32],
    [1, V128],
  ]),
  ...get(0),
  ...V.f64x2Splat,
  ...set(6),
  // end = (m & ~1) * 8
  ...get(3),
  ...i32(-2),
  OP.i32And,
  ...i32(3),
  OP.i32Shl,
  ...set(5),
  ...loopWhileBelow(4, 5, 16, [
    ...addr(2, 4),
    ...addr(2, 4),
    ...V.load,
    ...memarg(0),
    ...get(6),
    ...addr(1, 4),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...V.store,
    ...memarg(0),
  ]),
  ...get(3),
  ...i32(3),
  OP.i32Shl,
  ...set(5),
  ...loopWhileBelow(4, 5, 8, [
    ...addr(2, 4),
    ...addr(2, 4),
    OP.f64Load,
    ...memarg(0),
    ...get(0),
    ...addr(1, 4),
    OP.f64Load,
    ...memarg(0),
    OP.f64Mul,
    OP.f64Add,
    OP.f64Store,
    ...memarg(0),
  ]),
  OP.end,
];

/*
 * expRow(out=0, c=1, g=2, m=3, shift=4 f64, scale=5 f64): out[j] = exp(shift + g[j] - scale * c[j]).
 * Vectorised exp: clamp x to [-746, 709.78]; k = nearest(x / ln 2); r = x - k ln2 (Cody-Waite, two parts),
 * |r| <= 0.35; exp(r) by its Taylor polynomial of degree 13 (truncation < 5e-18 relative); times 2^k built
 * (Estrin's scheme) from exponent bits as 2^k1 * 2^k2 with k1 = k >> 1, so results down to the subnormal range stay exact.
 * Accuracy: a few ulp against Math.exp (tested); inputs above 709.78 give the largest finite double instead of
 * Infinity. Processes floor(m/2) pairs (the JavaScript wrapper does an odd last element), so out may alias c.
 */
const EXP_LOCALS = {
  i: 6,
  end: 7,
  x: 8,
  k: 9,
  r: 10,
  p: 11,
  ki: 12,
  k1: 13,
  vShift: 14,
  vScale: 15,
  lo: 16,
  hi: 17,
  invLn2: 18,
  ln2Hi: 19,
  ln2Lo: 20,
  bias: 21,
  r2: 22,
  r4: 23,
  r8: 24,
  coef0: 25, // 25..38: 1/0! .. 1/13!
  magic: 39, // 1.5 * 2^52: adding it rounds to an integer, whose bits are then the low word
} as const;
const EXP_DEGREE = 13;
const L = EXP_LOCALS;
/** The last local of the exp kernels (those after it are each kernel's own). */
const EXP_LAST = L.magic;
function splatConst(x: number, local: number): number[] {
  return [...f64Const(x), ...V.f64x2Splat, ...set(local)];
}
const inverseFactorials: number[] = [];
for (let k = 0, f = 1; k <= EXP_DEGREE; k++) {
  if (k > 0) f *= k;
  inverseFactorials.push(1 / f);
}
/**
 * Estrin's scheme for the degree-13 polynomial: the dependency chain is ~4 multiply-add levels instead of
 * 13 for Horner, so the loop is no longer bound by floating-point latency (measured ~2x faster).
 */
const lin = (c0: number, c1: number) => [
  ...get(L.coef0 + c0),
  ...get(L.coef0 + c1),
  ...get(L.r),
  ...V.f64x2Mul,
  ...V.f64x2Add,
];
const mulAdd = (low: number[], high: number[], power: number) => [
  ...low,
  ...high,
  ...get(power),
  ...V.f64x2Mul,
  ...V.f64x2Add,
];
const estrin: number[] = [
  ...get(L.r),
  ...get(L.r),
  ...V.f64x2Mul,
  ...set(L.r2),
  ...get(L.r2),
  ...get(L.r2),
  ...V.f64x2Mul,
  ...set(L.r4),
  ...get(L.r4),
  ...get(L.r4),
  ...V.f64x2Mul,
  ...set(L.r8),
  // p = [(c0 + c1 r) + (c2 + c3 r) r2] + [(c4 + c5 r) + (c6 + c7 r) r2] r4
  //   + ([(c8 + c9 r) + (c10 + c11 r) r2] + (c12 + c13 r) r4) r8
  ...mulAdd(mulAdd(lin(0, 1), lin(2, 3), L.r2), mulAdd(lin(4, 5), lin(6, 7), L.r2), L.r4),
  ...mulAdd(lin(8, 9), lin(10, 11), L.r2),
  ...lin(12, 13),
  ...get(L.r4),
  ...V.f64x2Mul,
  ...V.f64x2Add,
  ...get(L.r8),
  ...V.f64x2Mul,
  ...V.f64x2Add,
  ...set(L.p),
];
/** Splats the exp constants (clamp bounds, ln 2 parts, exponent bias, polynomial coefficients) into their locals. */
const expConstants = [
  ...splatConst(-746, L.lo),
  ...splatConst(709.78, L.hi),
  ...splatConst(1 / Math.LN2, L.invLn2),
  ...splatConst(0.6931471803691238, L.ln2Hi),
  ...splatConst(1.9082149292705877e-10, L.ln2Lo),
  // bias = 1023 in the high 32-bit word of each lane: i64.extend_i32_s (0xad), i64.const 32, i64.shl (0x86), splat
  ...[OP.i32Const, ...sleb(1023), 0xad, 0x42, 32, 0x86, ...V.i64x2Splat, ...set(L.bias)],
  ...inverseFactorials.flatMap((c, k) => splatConst(c, L.coef0 + k)),
  ...splatConst(1.5 * 2 ** 52, L.magic),
];
/** shift and scale (f64 parameters 4 and 5 of every exp kernel) splatted into vShift and vScale. */
const shiftScale = [
  ...get(4),
  ...V.f64x2Splat,
  ...set(L.vShift),
  ...get(5),
  ...V.f64x2Splat,
  ...set(L.vScale),
];
/**
 * exp of the f64x2 on the stack, left on the stack (see expRow for the method): clamp, k = nearest(x / ln2),
 * r = (x - k ln2_hi) - k ln2_lo, the polynomial (Estrin), then times 2^k1 * 2^k2 with k1 = k >> 1.
 */
const expOfStack = [
  // x = clamp(arg): pmax/pmin are one instruction each (max/min's NaN and -0 rules need several); a NaN
  // argument stays NaN either way.
  ...get(L.lo),
  ...V.f64x2Pmax,
  ...get(L.hi),
  ...V.f64x2Pmin,
  ...set(L.x),
  // t = x / ln2 + magic (rounded to an integer, ties to even: nearest(x / ln2) + magic); k = t - magic;
  // ki = t's low 32-bit word (k) moved to the high word of its lane
  ...get(L.x),
  ...get(L.invLn2),
  ...V.f64x2Mul,
  ...get(L.magic),
  ...V.f64x2Add,
  ...tee(L.ki),
  ...get(L.magic),
  ...V.f64x2Sub,
  ...set(L.k),
  ...get(L.ki),
  ...i32(32),
  ...V.i64x2Shl,
  ...set(L.ki),
  ...get(L.x),
  ...get(L.k),
  ...get(L.ln2Hi),
  ...V.f64x2Mul,
  ...V.f64x2Sub,
  ...get(L.k),
  ...get(L.ln2Lo),
  ...V.f64x2Mul,
  ...V.f64x2Sub,
  ...set(L.r),
  ...estrin,
  // k1 = k >> 1, k2 = k - k1 in the high words; 2^k1 = (k1 + 1023) << 52 (the high word shifted by 20)
  ...get(L.ki),
  ...i32(1),
  ...V.i32x4ShrS,
  ...set(L.k1),
  ...get(L.p),
  ...get(L.k1),
  ...get(L.bias),
  ...V.i32x4Add,
  ...i32(20),
  ...V.i32x4Shl,
  ...V.f64x2Mul,
  ...get(L.ki),
  ...get(L.k1),
  ...V.i32x4Sub,
  ...get(L.bias),
  ...V.i32x4Add,
  ...i32(20),
  ...V.i32x4Shl,
  ...V.f64x2Mul,
];
/** end = (m & ~1) * 8 bytes: the pairs the two-lane loops cover (m in parameter 3). */
const pairsEnd = [...get(3), ...i32(-2), OP.i32And, ...i32(3), OP.i32Shl, ...set(L.end)];
/** The two lanes of an f64x2 local added. */
const laneSum = (local: number) => [
  ...get(local),
  ...V.extractLane(0),
  ...get(local),
  ...V.extractLane(1),
  OP.f64Add,
];
const expRowBody = [
  ...vec([
    [2, I32],
    [EXP_LAST + 1 - L.x, V128],
  ]),
  ...shiftScale,
  ...expConstants,
  ...pairsEnd,
  ...loopWhileBelow(L.i, L.end, 16, [
    // out[j] = exp(clamp(shift + g - scale * c))
    ...addr(0, L.i),
    ...get(L.vShift),
    ...addr(2, L.i),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Add,
    ...get(L.vScale),
    ...addr(1, L.i),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Mul,
    ...V.f64x2Sub,
    ...expOfStack,
    ...V.store,
    ...memarg(0),
  ]),
  OP.end,
];

/*
 * kernelSweep(K=0, bv=1, a=2, u=3, col=4, n=5, m=6): one kernel-domain Sinkhorn row sweep in a single call,
 *   for each row i: u[i] = 1 / dot(K_i, bv); w = a[i] u[i]; if (w != 0) col += w K_i
 * (col must be zeroed by the caller). Locals: i=7 (row), row=8 (byte pointer), rowBytes=9 (i32), ui=10, w=11.
 */
const FN_DOT = 0;
const FN_AXPY = 1;
const kernelSweepBody = [
  ...vec([
    [3, I32],
    [2, F64],
  ]),
  ...get(6),
  ...i32(3),
  OP.i32Shl,
  ...set(9),
  ...get(0),
  ...set(8),
  ...loopWhileBelow(7, 5, 1, [
    ...f64Const(1),
    ...get(8),
    ...get(1),
    ...get(6),
    OP.call,
    FN_DOT,
    OP.f64Div,
    ...set(10),
    // u[i] = ui
    ...get(3),
    ...get(7),
    ...i32(3),
    OP.i32Shl,
    OP.i32Add,
    ...get(10),
    OP.f64Store,
    ...memarg(0),
    // w = a[i] * ui
    ...get(2),
    ...get(7),
    ...i32(3),
    OP.i32Shl,
    OP.i32Add,
    OP.f64Load,
    ...memarg(0),
    ...get(10),
    OP.f64Mul,
    ...set(11),
    ...get(11),
    ...f64Const(0),
    OP.f64Ne,
    OP.if,
    OP.void,
    ...get(11),
    ...get(8),
    ...get(4),
    ...get(6),
    OP.call,
    FN_AXPY,
    OP.end,
    ...get(8),
    ...get(9),
    OP.i32Add,
    ...set(8),
  ]),
  OP.end,
];

/*
 * Online (matrix-free) Sinkhorn, in two passes per row (see online-cpu.ts):
 *
 * costRow(Y=0, xi=1, xstride=2, h=3, v=4, m=5, dim=6, cs=7 f64, euclid=8) -> f64
 *   v[j] = h[j] - cs * c(x_i, y_j) for the floor(m/2) first pairs of j, returning their max. Y is dim-major
 *   (coordinate k of point j at Y + (k m + j) * 8), x_i's coordinates are at xi + k * xstride, and
 *   c = |x - y|^2, or |x - y| when euclid != 0. No matrix: the cost is computed from the points.
 * Locals: i=9 end=10 k=11 yk=12 xk=13 mBytes=14 (i32), acc=15 diff=16 vmax=17 vcs=18 val=19 (v128).
 */
/** The locals (and parameters) a cost loop uses: see costLoop. */
interface CostLocals {
  i: number;
  Y: number;
  xi: number;
  xstride: number;
  dim: number;
  euclid: number;
  k: number;
  yk: number;
  xk: number;
  mBytes: number;
  acc: number;
  diff: number;
}
/**
 * acc = c(x_i, y_j) for the two points j, j + 1 (byte offset i into y's rows): the loop over any dim (y dim-major,
 * m * 8 = mBytes between its coordinates; x_i's coordinates xstride bytes apart), sqrt when euclid != 0.
 */
function costLoop(r: CostLocals): number[] {
  return [
    ...f64Const(0),
    ...V.f64x2Splat,
    ...set(r.acc),
    ...i32(0),
    ...set(r.k),
    ...addr(r.Y, r.i),
    ...set(r.yk),
    ...get(r.xi),
    ...set(r.xk),
    ...loopWhileBelow(r.k, r.dim, 1, [
      ...get(r.xk),
      OP.f64Load,
      ...memarg(0),
      ...V.f64x2Splat,
      ...get(r.yk),
      ...V.load,
      ...memarg(0),
      ...V.f64x2Sub,
      ...set(r.diff),
      ...get(r.acc),
      ...get(r.diff),
      ...get(r.diff),
      ...V.f64x2Mul,
      ...V.f64x2Add,
      ...set(r.acc),
      ...get(r.yk),
      ...get(r.mBytes),
      OP.i32Add,
      ...set(r.yk),
      ...get(r.xk),
      ...get(r.xstride),
      OP.i32Add,
      ...set(r.xk),
    ]),
    ...get(r.euclid),
    OP.if,
    OP.void,
    ...get(r.acc),
    ...V.f64x2Sqrt,
    ...set(r.acc),
    OP.end,
  ];
}
const C = { i: 9, end: 10, k: 11, yk: 12, xk: 13, mBytes: 14, acc: 15, diff: 16, vmax: 17, vcs: 18, val: 19 };
const costRowBody = [
  ...vec([
    [6, I32],
    [5, V128],
  ]),
  ...get(7),
  ...V.f64x2Splat,
  ...set(C.vcs),
  ...f64Const(Number.NEGATIVE_INFINITY),
  ...V.f64x2Splat,
  ...set(C.vmax),
  ...get(5),
  ...i32(3),
  OP.i32Shl,
  ...set(C.mBytes),
  ...get(5),
  ...i32(-2),
  OP.i32And,
  ...i32(3),
  OP.i32Shl,
  ...set(C.end),
  ...loopWhileBelow(C.i, C.end, 16, [
    ...costLoop({ ...C, Y: 0, xi: 1, xstride: 2, dim: 6, euclid: 8 }),
    // val = h - cs * acc; v[j] = val; vmax = max(vmax, val)
    ...addr(3, C.i),
    ...V.load,
    ...memarg(0),
    ...get(C.vcs),
    ...get(C.acc),
    ...V.f64x2Mul,
    ...V.f64x2Sub,
    ...set(C.val),
    ...addr(4, C.i),
    ...get(C.val),
    ...V.store,
    ...memarg(0),
    ...get(C.vmax),
    ...get(C.val),
    ...V.f64x2Max,
    ...set(C.vmax),
  ]),
  ...get(C.vmax),
  ...V.extractLane(0),
  ...get(C.vmax),
  ...V.extractLane(1),
  OP.f64Max,
  OP.end,
];

/*
 * expSum(v=0, h=1, res=2, m=3, shift=4 f64, scale=5 f64) -> f64: the second pass,
 *   e_j = exp(shift + scale * v[j]);  returns sum_j e_j and stores sum_j e_j * (h[j] - v[j]) at res
 * over the floor(m/2) first pairs (the same vectorised exp as expRow; its locals 6..38, then
 * accS=39 accW=40 e=41). With h - v = cs * c, the second sum weighs the terms by their cost.
 * expStoreDot(v=0, b=1, res=2, m=3, shift=4, scale=5) -> f64: the same exp, stored in place (v[j] = e_j),
 * returning sum_j b[j] e_j (the fused row update of online Sinkhorn; res is left alone).
 */
const ES = { accS: 40, accW: 41, e: 42 };
const expReduceBody = (storeDot: boolean) => [
  ...vec([
    [2, I32],
    [ES.e + 1 - L.x, V128],
  ]),
  ...shiftScale,
  ...expConstants,
  ...splatConst(0, ES.accS),
  ...splatConst(0, ES.accW),
  ...pairsEnd,
  ...loopWhileBelow(L.i, L.end, 16, [
    // e = exp(clamp(shift + scale * v))
    ...get(L.vShift),
    ...get(L.vScale),
    ...addr(0, L.i),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...expOfStack,
    ...set(ES.e),
    ...(storeDot
      ? [
          // v[j] = e; accS += e * h[j]
          ...addr(0, L.i),
          ...get(ES.e),
          ...V.store,
          ...memarg(0),
          ...get(ES.accS),
          ...get(ES.e),
          ...addr(1, L.i),
          ...V.load,
          ...memarg(0),
          ...V.f64x2Mul,
          ...V.f64x2Add,
          ...set(ES.accS),
        ]
      : [
          ...get(ES.accS),
          ...get(ES.e),
          ...V.f64x2Add,
          ...set(ES.accS),
          // accW += e * (h - v)
          ...get(ES.accW),
          ...get(ES.e),
          ...addr(1, L.i),
          ...V.load,
          ...memarg(0),
          ...addr(0, L.i),
          ...V.load,
          ...memarg(0),
          ...V.f64x2Sub,
          ...V.f64x2Mul,
          ...V.f64x2Add,
          ...set(ES.accW),
        ]),
  ]),
  ...(storeDot ? [] : [...get(2), ...laneSum(ES.accW), OP.f64Store, ...memarg(0)]),
  ...laneSum(ES.accS),
  OP.end,
];
const expSumBody = expReduceBody(false);
const expStoreDotBody = expReduceBody(true);

/*
 * costExp(args=0, _=1, _=2, m=3, shift=4 f64, scale=5 f64) -> f64: one pass of the fused online row update,
 * the cost from the points and the exp together (no stored cost, no max pass):
 *   t[j] = exp(shift + scale * (g[j] - cs * c(x_i, y_j))),  returns sum_j b[j] t[j]
 * over the floor(m/2) first pairs. The other operands are i32 words at args: Y, xi, xstride, g, t, b, dim,
 * euclid, then cs as f64 at args + 32 (costRow's layout and meaning). Locals: expRow's 6..38, accS 39,
 * e 41, then Y..mBytes 42..53 (i32) and acc, diff, vcs 54..56 (v128); the unrolled variants add, per
 * coordinate k < dim, x_ik splatted (57 + k, v128) and the address of y's coordinate k (61 + k, i32).
 *
 * Variants: costExpBody(0, _) loops over any dim and tests euclid per pair; costExpBody(dim, euclid) for
 * dim 1..UNROLLED_DIMS has the coordinates unrolled, x_i's splatted once per row and the cost fixed: the same
 * arithmetic in the same order (bit-identical results), fewer instructions per pair.
 */
const CE = {
  Y: 43,
  xi: 44,
  xstride: 45,
  g: 46,
  t: 47,
  b: 48,
  dim: 49,
  euclid: 50,
  k: 51,
  yk: 52,
  xk: 53,
  mBytes: 54,
  acc: 55,
  diff: 56,
  vcs: 57,
  xs: 58,
  ys: 62,
};
const UNROLLED_DIMS = 4;
const loadArg = (word: number, local: number) => [...get(0), OP.i32Load, 2, ...uleb(word * 4), ...set(local)];
/** The same for a fixed dim and cost: ((0 + d_0^2) + d_1^2) + ..., as the loop adds. */
const costUnrolled = (dim: number, euclid: boolean) => [
  ...f64Const(0),
  ...V.f64x2Splat,
  ...Array.from({ length: dim }, (_, k) => [
    ...get(CE.xs + k),
    ...addr(CE.ys + k, L.i),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Sub,
    ...tee(CE.diff),
    ...get(CE.diff),
    ...V.f64x2Mul,
    ...V.f64x2Add,
  ]).flat(),
  ...(euclid ? V.f64x2Sqrt : []),
  ...set(CE.acc),
];
/** Per row: x_ik splatted and the address of y's coordinate k, for the unrolled variants. */
const unrolledSetup = (dim: number) =>
  Array.from({ length: dim }, (_, k) => [
    ...get(CE.xi),
    ...(k ? [...get(CE.xstride), ...i32(k), OP.i32Mul, OP.i32Add] : []),
    OP.f64Load,
    ...memarg(0),
    ...V.f64x2Splat,
    ...set(CE.xs + k),
    ...get(CE.Y),
    ...(k ? [...get(CE.mBytes), ...i32(k), OP.i32Mul, OP.i32Add] : []),
    ...set(CE.ys + k),
  ]).flat();
const costExpBody = (dim: number, euclid: boolean) => [
  ...vec([
    [2, I32],
    [ES.e + 1 - L.x, V128],
    [12, I32],
    [3, V128],
    [UNROLLED_DIMS, V128],
    [UNROLLED_DIMS, I32],
  ]),
  ...loadArg(0, CE.Y),
  ...loadArg(1, CE.xi),
  ...loadArg(2, CE.xstride),
  ...loadArg(3, CE.g),
  ...loadArg(4, CE.t),
  ...loadArg(5, CE.b),
  ...loadArg(6, CE.dim),
  ...loadArg(7, CE.euclid),
  ...get(0),
  OP.f64Load,
  ...memarg(32),
  ...V.f64x2Splat,
  ...set(CE.vcs),
  ...get(3),
  ...i32(3),
  OP.i32Shl,
  ...set(CE.mBytes),
  ...(dim ? unrolledSetup(dim) : []),
  ...shiftScale,
  ...expConstants,
  ...splatConst(0, ES.accS),
  ...pairsEnd,
  ...loopWhileBelow(L.i, L.end, 16, [
    ...(dim ? costUnrolled(dim, euclid) : costLoop({ ...CE, i: L.i })),
    // e = exp(clamp(shift + scale * (g - cs * acc)))
    ...get(L.vShift),
    ...get(L.vScale),
    ...addr(CE.g, L.i),
    ...V.load,
    ...memarg(0),
    ...get(CE.vcs),
    ...get(CE.acc),
    ...V.f64x2Mul,
    ...V.f64x2Sub,
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...expOfStack,
    ...set(ES.e),
    // t[j] = e; accS += b[j] e
    ...addr(CE.t, L.i),
    ...get(ES.e),
    ...V.store,
    ...memarg(0),
    ...get(ES.accS),
    ...get(ES.e),
    ...addr(CE.b, L.i),
    ...V.load,
    ...memarg(0),
    ...V.f64x2Mul,
    ...V.f64x2Add,
    ...set(ES.accS),
  ]),
  ...laneSum(ES.accS),
  OP.end,
];
/** costExp variants after the generic one: [dim 1 sqeuclidean, dim 1 euclidean, dim 2 sqeuclidean, ...]. */
const costExpVariants = Array.from({ length: 2 * UNROLLED_DIMS }, (_, v) =>
  costExpBody(1 + (v >> 1), (v & 1) === 1),
);

/** The module's functions, in index order (kernelSweep calls dot and axpy as functions 0 and 1). */
const FUNCTIONS: { name: string; type: number; body: number[] }[] = [
  { name: 'dot', type: 0, body: dotBody },
  { name: 'axpy', type: 1, body: axpyBody },
  { name: 'expRow', type: 2, body: expRowBody },
  { name: 'kernelSweep', type: 3, body: kernelSweepBody },
  { name: 'costRow', type: 4, body: costRowBody },
  { name: 'expSum', type: 5, body: expSumBody },
  { name: 'expStoreDot', type: 5, body: expStoreDotBody },
  { name: 'costExp', type: 5, body: costExpBody(0, false) },
  ...costExpVariants.map((body, v) => ({ name: costExpName(1 + (v >> 1), (v & 1) === 1), type: 5, body })),
];
function costExpName(dim: number, euclid: boolean): string {
  return `costExp${dim}${euclid ? 'e' : ''}`;
}

const MODULE_BYTES = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d], // \0asm
  ...[0x01, 0x00, 0x00, 0x00], // version 1
  ...section(
    1, // types
    vec([
      [0x60, ...vec([[I32], [I32], [I32]]), ...vec([[F64]])],
      [0x60, ...vec([[F64], [I32], [I32], [I32]]), ...vec([])],
      [0x60, ...vec([[I32], [I32], [I32], [I32], [F64], [F64]]), ...vec([])],
      [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32]]), ...vec([])],
      [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32], [F64], [I32]]), ...vec([[F64]])],
      [0x60, ...vec([[I32], [I32], [I32], [I32], [F64], [F64]]), ...vec([[F64]])],
    ]),
  ),
  ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x00, 0x01]])), // import memory, min 1 page
  ...section(3, vec(FUNCTIONS.map((fn) => [fn.type]))),
  ...section(7, vec(FUNCTIONS.map((fn, k) => [...name(fn.name), 0x00, ...uleb(k)]))), // exports
  ...section(10, vec(FUNCTIONS.map((fn) => [...uleb(fn.body.length), ...fn.body]))), // code
]);

/** The slice of the WebAssembly JS API we use (the project's TS lib has no DOM typings for it). */
interface WasmMemory {
  buffer: ArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

function compiledModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = wasm?.validate(MODULE_BYTES) ? new wasm.Module(MODULE_BYTES) : null;
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

export interface SimdWorkspace {
  /** Float64Array views into the workspace memory, allocated in order. */
  arrays: Float64Array[];
  /** sum_j arrays[a][aOffset + j] * arrays[b][j] for j < len. */
  dot(a: number, aOffset: number, b: number, len: number): number;
  /** arrays[out][j] += w * arrays[a][aOffset + j] for j < len. */
  axpy(w: number, a: number, aOffset: number, out: number, len: number): void;
  /**
   * arrays[out][outOffset + j] = exp(shift + arrays[g][j] - scale * arrays[c][cOffset + j]) for j < len.
   * out may be the same region as c (in place).
   */
  expRow(
    out: number,
    outOffset: number,
    c: number,
    cOffset: number,
    g: number,
    len: number,
    shift: number,
    scale: number,
  ): void;
  /**
   * One kernel-domain sweep over arrays K (n x m), bv (m), a (n), u (n), col (m): u_i = 1 / (K_i . bv) and
   * col += a_i u_i K_i (col must be zeroed first). Arguments are array indices in this workspace.
   */
  kernelSweep(K: number, bv: number, a: number, u: number, col: number, n: number, m: number): void;
  /**
   * Online Sinkhorn, first pass over one row: arrays[v][j] = arrays[h][j] - cs * c(x, y_j) for the first
   * 2 * floor(m / 2) points y_j of arrays[y] (dim-major: coordinate k of y_j at k * m + j), x's coordinate k at
   * arrays[x][xOffset + k * xStride]; c = |x - y|^2, or |x - y| when euclid. Returns the max of those v[j].
   */
  costRow(
    y: number,
    x: number,
    xOffset: number,
    xStride: number,
    h: number,
    v: number,
    m: number,
    dim: number,
    cs: number,
    euclid: boolean,
  ): number;
  /**
   * Second pass: with e_j = exp(shift + scale * arrays[v][j]) over the first 2 * floor(m / 2) entries, returns
   * sum_j e_j and stores sum_j e_j * (arrays[h][j] - arrays[v][j]) in arrays[res][0].
   */
  expSum(v: number, h: number, res: number, m: number, shift: number, scale: number): number;
  /** arrays[v][j] = exp(shift + scale * arrays[v][j]) over the first 2 * floor(m / 2); returns sum_j b_j of that. */
  expStoreDot(v: number, b: number, m: number, shift: number, scale: number): number;
  /**
   * The fused online row pass: over the first 2 * floor(m / 2) points, t_j = exp(shift + scale * (g_j - cs c_ij)),
   * returning sum_j b_j t_j. Its operands are set once with costExpArgs(), then only x_i changes per row.
   */
  costExp(xOffset: number, m: number, shift: number, scale: number): number;
  /** Operands of costExp (array indices as in costRow); costExp's xOffset then selects x_i. */
  costExpArgs(
    y: number,
    x: number,
    xStride: number,
    g: number,
    t: number,
    b: number,
    dim: number,
    cs: number,
    euclid: boolean,
  ): void;
}

/** Largest workspace we will build (wasm32 memories stop at 4 GiB; keep well clear). */
const MAX_BYTES = 2 ** 31;

/**
 * A workspace holding float64 arrays of the given lengths in one WebAssembly memory, with SIMD dot/axpy
 * over them; undefined when WebAssembly SIMD is unavailable or the arrays are too large.
 */
export function simdWorkspace(lengths: number[]): SimdWorkspace | undefined {
  const module = compiledModule();
  if (!module || !wasm) return undefined;
  const offsets: number[] = [];
  let bytes = 0;
  for (const len of lengths) {
    offsets.push(bytes);
    bytes += Math.ceil((len * 8) / 16) * 16;
  }
  if (bytes > MAX_BYTES) return undefined;
  // costExp's operands after the arrays: 8 i32 words, then cs (f64) at +32.
  const argsOffset = bytes;
  bytes += 48;
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  let memory: WasmMemory;
  try {
    memory = new wasm.Memory({ initial: pages, maximum: pages });
  } catch {
    return undefined;
  }
  const instance = new wasm.Instance(module, { env: { mem: memory } });
  const dot = instance.exports.dot as (k: number, v: number, m: number) => number;
  const axpy = instance.exports.axpy as (w: number, k: number, out: number, m: number) => void;
  const kernelSweep = instance.exports.kernelSweep as (...pointersAndSizes: number[]) => void;
  const costRow = instance.exports.costRow as (...args: number[]) => number;
  const expSum = instance.exports.expSum as (...args: number[]) => number;
  const expStoreDot = instance.exports.expStoreDot as (...args: number[]) => number;
  const costExpAny = instance.exports.costExp as (...args: number[]) => number;
  let costExp = costExpAny;
  const expRow = instance.exports.expRow as (
    out: number,
    c: number,
    g: number,
    m: number,
    shift: number,
    scale: number,
  ) => void;
  const arrays = lengths.map((len, i) => new Float64Array(memory.buffer, offsets[i], len));
  const argWords = new Int32Array(memory.buffer, argsOffset, 8);
  let costExpX = 0;
  const argF64 = new Float64Array(memory.buffer, argsOffset + 32, 1);
  return {
    arrays,
    dot: (a, aOffset, b, len) => dot(offsets[a] + aOffset * 8, offsets[b], len),
    axpy: (w, a, aOffset, out, len) => axpy(w, offsets[a] + aOffset * 8, offsets[out], len),
    kernelSweep: (K, bv, a, u, col, n, m) =>
      kernelSweep(offsets[K], offsets[bv], offsets[a], offsets[u], offsets[col], n, m),
    costRow: (y, x, xOffset, xStride, h, v, m, dim, cs, euclid) =>
      costRow(
        offsets[y],
        offsets[x] + xOffset * 8,
        xStride * 8,
        offsets[h],
        offsets[v],
        m,
        dim,
        cs,
        euclid ? 1 : 0,
      ),
    expSum: (v, h, res, m, shift, scale) => expSum(offsets[v], offsets[h], offsets[res], m, shift, scale),
    expStoreDot: (v, b, m, shift, scale) => expStoreDot(offsets[v], offsets[b], 0, m, shift, scale),
    costExp: (xOffset, m, shift, scale) => {
      argWords[1] = costExpX + xOffset * 8;
      return costExp(argsOffset, 0, 0, m, shift, scale);
    },
    costExpArgs: (y, x, xStride, g, t, b, dim, cs, euclid) => {
      argWords[0] = offsets[y];
      argWords[2] = xStride * 8;
      argWords[3] = offsets[g];
      argWords[4] = offsets[t];
      argWords[5] = offsets[b];
      argWords[6] = dim;
      argWords[7] = euclid ? 1 : 0;
      costExpX = offsets[x];
      costExp =
        dim >= 1 && dim <= UNROLLED_DIMS
          ? (instance.exports[costExpName(dim, euclid)] as (...args: number[]) => number)
          : costExpAny;
      argF64[0] = cs;
    },
    expRow: (out, outOffset, c, cOffset, g, len, shift, scale) => {
      expRow(offsets[out] + outOffset * 8, offsets[c] + cOffset * 8, offsets[g], len, shift, scale);
      if (len & 1) {
        const last = len - 1;
        arrays[out][outOffset + last] = Math.exp(shift + arrays[g][last] - scale * arrays[c][cOffset + last]);
      }
    },
  };
}
