/**
 * Exact optimal transport by the primal network simplex, a port of the structure of LEMON's NetworkSimplex
 * as POT ships it (network_simplex_simple.h): a spanning tree on the bipartite graph plus an artificial root,
 * stored as parent / pred / thread / reverse-thread / successor-count / last-successor arrays, the block-search
 * pivot rule (block size ~ sqrt(#arcs)) and float64 flows and potentials.
 *
 * Differences from LEMON/POT, all for speed or memory on dense bipartite problems:
 * - arcs are implicit: arc e = i*m + j goes from supply node i to demand node n + j and its cost is C[e];
 *   the pivot loop walks (i, j) with counters, so there are no source/target arrays of size n*m;
 * - arcs are uncapacitated, so no arc is ever at an upper bound: non-tree arcs carry zero flow and the flow of
 *   the tree arc above node u is stored per node (flowOfPred[u]); n*m memory is only the cost and one byte
 *   of state per arc;
 * - zero-weight rows and columns stay in the graph (they just carry no flow); since the simplex prices every
 *   arc, their potentials come out dual feasible without POT's post-hoc repair.
 */
import { OT_DEFAULTS } from './defaults.js';
import { checkBalanced } from './marginals.js';
import { maxAbs, powerOfTwoScale, scaleInPlace } from './range.js';
import {
  type CostMatrix,
  OtInputError,
  type OtResult,
  type SolveControl,
  type SparsePlan,
  throwIfAborted,
} from './types.js';

export interface EmdOptions extends SolveControl {
  /** Maximum number of pivots (POT's numItermax). Default 100000. */
  maxIter?: number;
  /** Rescale b to sum(a) when the masses differ beyond 1e-9 relative instead of throwing. */
  normalize?: boolean;
  /**
   * Shift the potentials by a constant so that <u, a> = <v, b> (POT's center_dual, default true). Any shift
   * u + c, v - c is an equally valid dual solution; centring makes the result unique and reproducible.
   */
  centerDual?: boolean;
}

export interface EmdResult extends OtResult {
  sparsePlan: SparsePlan;
  /** Dual potentials: u_i + v_j <= C_ij for all i, j, with equality on the support of the plan. */
  f: Float64Array;
  g: Float64Array;
}

const STATE_TREE = 0;
const STATE_LOWER = 1;
/** Relative pricing tolerance, as POT's EPSILON: an arc enters only if its reduced cost < -EPS * scale. */
const PRICING_EPS = 2.220446049250313e-15;

/**
 * Solves min <C, P> s.t. P 1 = a, P^T 1 = b, P >= 0 exactly. POT's `ot.emd(a, b, M)` with `log=True`.
 * Throws OtInputError for malformed or unbalanced input.
 */
export function emd(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: CostMatrix,
  options: EmdOptions = {},
): EmdResult {
  const n = C.n;
  const m = C.m;
  if (a.length !== n || b.length !== m) {
    throw new OtInputError(`dimension mismatch: a has ${a.length}, b has ${b.length}, cost is ${n} x ${m}`);
  }
  const { a: wa, b: wb } = checkBalanced(a, b, { normalize: options.normalize });
  const maxIter = options.maxIter ?? OT_DEFAULTS.emd.maxIter;
  // Costs near the double limit overflow the artificial arcs ((max|C| + 1) * (n + m)): solve C / 2^k (exact)
  // and multiply the cost and potentials back.
  const costScale = powerOfTwoScale(maxAbs(C.data));
  const cost0 = costScale === 1 ? C.data : C.data.map((v) => v / costScale);
  const simplex = new NetworkSimplex(n, m, cost0, wa, wb);
  const status = simplex.run(maxIter, options);

  const warnings: string[] = [];
  if (status === 'max_iter_reached') {
    warnings.push(
      `network simplex stopped after ${maxIter} pivots before optimality: raise maxIter (the plan is not optimal and may not match the marginals yet)`,
    );
  } else if (status === 'infeasible') {
    warnings.push(
      'problem is infeasible: the marginals cannot be matched (check that a and b have equal mass)',
    );
  }

  const { plan, cost: scaledCost } = simplex.extractPlan();
  const cost = scaledCost * costScale;
  const f = new Float64Array(n);
  const g = new Float64Array(m);
  // LEMON's potentials make reduced costs C_ij + pi_i - pi_{n+j} >= 0; the transport duals are u = -pi, v = pi.
  for (let i = 0; i < n; i++) f[i] = -simplex.pi[i];
  for (let j = 0; j < m; j++) g[j] = simplex.pi[n + j];
  if (options.centerDual ?? true) centerDual(f, g, wa, wb);
  scaleInPlace(f, costScale);
  scaleInPlace(g, costScale);

  return {
    solver: 'networkSimplex',
    sparsePlan: plan,
    n,
    m,
    f,
    g,
    cost,
    status,
    converged: status === 'optimal',
    iterations: simplex.iterations,
    warnings,
  };
}

/** POT's center_ot_dual: u + c, v - c with c = (<v,b> - <u,a>) / (sum a + sum b), so that <u,a> = <v,b>. */
function centerDual(u: Float64Array, v: Float64Array, a: Float64Array, b: Float64Array): void {
  let ua = 0;
  let vb = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < u.length; i++) {
    ua += u[i] * a[i];
    sa += a[i];
  }
  for (let j = 0; j < v.length; j++) {
    vb += v[j] * b[j];
    sb += b[j];
  }
  const c = (vb - ua) / (sa + sb);
  for (let i = 0; i < u.length; i++) u[i] += c;
  for (let j = 0; j < v.length; j++) v[j] -= c;
}

/** Optimal cost <C, P> only (POT's emd2). */
export function emd2(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: CostMatrix,
  options: EmdOptions = {},
): number {
  return emd(a, b, C, options).cost;
}

/** Dense row-major copy of a sparse plan. */
export function densePlan(plan: SparsePlan, n: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let k = 0; k < plan.values.length; k++) out[plan.rows[k] * m + plan.cols[k]] += plan.values[k];
  return out;
}

/**
 * The solver state. Nodes 0..n-1 supply a_i, nodes n..n+m-1 demand b_j, node n+m is the artificial root.
 * Arc ids: 0..n*m-1 are real (i -> n+j), n*m + u is the artificial arc between node u and the root.
 */
class NetworkSimplex {
  readonly pi: Float64Array;
  /** View of pi at the demand nodes (pi[n + j]), so the pivot loop indexes it by j alone. */
  private readonly piDemand: Float64Array;
  iterations = 0;

  private readonly nodeNum: number;
  private readonly arcNum: number;
  private readonly root: number;
  private readonly supply: Float64Array;
  private readonly state: Int8Array;
  private readonly parent: Int32Array;
  private readonly pred: Int32Array;
  private readonly forward: Uint8Array; // 1 when pred[u] is directed u -> parent[u]
  private readonly thread: Int32Array;
  private readonly revThread: Int32Array;
  private readonly succNum: Int32Array;
  private readonly lastSucc: Int32Array;
  private readonly flowOfPred: Float64Array;
  private readonly dirtyRevs: Int32Array;
  private readonly artSource: Int32Array;
  private readonly artTarget: Int32Array;
  private readonly artCost: Float64Array;
  private readonly blockSize: number;
  private nextArc = 0;

  // Pivot registers (LEMON's in_arc, join, u_in, v_in, u_out, v_out, delta).
  private inArc = 0;
  private join = 0;
  private uIn = 0;
  private vIn = 0;
  private uOut = 0;
  private delta = 0;

  constructor(
    private readonly n: number,
    private readonly m: number,
    private readonly cost: Float64Array,
    a: Float64Array,
    b: Float64Array,
  ) {
    const N = n + m;
    this.nodeNum = N;
    this.arcNum = n * m;
    this.root = N;
    this.supply = new Float64Array(N + 1);
    for (let i = 0; i < n; i++) this.supply[i] = a[i];
    for (let j = 0; j < m; j++) this.supply[n + j] = -b[j];
    this.state = new Int8Array(this.arcNum).fill(STATE_LOWER);
    this.pi = new Float64Array(N + 1);
    this.piDemand = this.pi.subarray(n, n + m);
    this.parent = new Int32Array(N + 1);
    this.pred = new Int32Array(N + 1);
    this.forward = new Uint8Array(N + 1);
    this.thread = new Int32Array(N + 1);
    this.revThread = new Int32Array(N + 1);
    this.succNum = new Int32Array(N + 1);
    this.lastSucc = new Int32Array(N + 1);
    this.flowOfPred = new Float64Array(N + 1);
    this.dirtyRevs = new Int32Array(N + 1);
    this.artSource = new Int32Array(N);
    this.artTarget = new Int32Array(N);
    this.artCost = new Float64Array(N);
    this.blockSize = Math.max(Math.floor(Math.sqrt(this.arcNum)), 10);
    this.init();
  }

  /** LEMON's init() for equality supply constraints: every node hangs off the root by an artificial arc. */
  private init(): void {
    const N = this.nodeNum;
    const root = this.root;
    let maxC = 0;
    const cost = this.cost;
    for (let e = 0; e < this.arcNum; e++) maxC = Math.max(maxC, Math.abs(cost[e]));
    // Artificial arcs cost more than any real path, so the simplex drives their flow to zero.
    const artCost = (maxC + 1) * N;
    let sumSupply = 0;
    for (let u = 0; u < N; u++) sumSupply += this.supply[u];
    this.supply[root] = -sumSupply;
    this.parent[root] = -1;
    this.pred[root] = -1;
    this.thread[root] = 0;
    this.revThread[0] = root;
    this.succNum[root] = N + 1;
    this.lastSucc[root] = root - 1;
    this.pi[root] = 0;
    for (let u = 0; u < N; u++) {
      this.parent[u] = root;
      this.pred[u] = this.arcNum + u;
      this.thread[u] = u + 1;
      this.revThread[u + 1] = u;
      this.succNum[u] = 1;
      this.lastSucc[u] = u;
      if (this.supply[u] >= 0) {
        this.forward[u] = 1;
        this.pi[u] = 0;
        this.artSource[u] = u;
        this.artTarget[u] = root;
        this.flowOfPred[u] = this.supply[u];
        this.artCost[u] = 0;
      } else {
        this.forward[u] = 0;
        this.pi[u] = artCost;
        this.artSource[u] = root;
        this.artTarget[u] = u;
        this.flowOfPred[u] = -this.supply[u];
        this.artCost[u] = artCost;
      }
    }
  }

  private sourceOf(e: number): number {
    return e < this.arcNum ? (e / this.m) | 0 : this.artSource[e - this.arcNum];
  }

  private targetOf(e: number): number {
    return e < this.arcNum ? this.n + (e % this.m) : this.artTarget[e - this.arcNum];
  }

  private costOf(e: number): number {
    return e < this.arcNum ? this.cost[e] : this.artCost[e - this.arcNum];
  }

  /**
   * Block search: scan arcs cyclically from where the last search stopped, blockSize at a time, and take the
   * most negative reduced cost C_ij + pi_i - pi_{n+j} of the first block that has one. The scan runs over
   * row segments (a tight inner loop over j with pi_i in a register) instead of dividing arc ids by m.
   */
  private findEnteringArc(): boolean {
    const cost = this.cost;
    const state = this.state;
    const pi = this.pi;
    const piDemand = this.piDemand;
    const m = this.m;
    const n = this.n;
    const arcNum = this.arcNum;
    const blockSize = this.blockSize;
    let min = 0;
    let minArc = -1;
    let remaining = blockSize;
    let i = (this.nextArc / m) | 0;
    let j = this.nextArc - i * m;
    let scanned = 0;
    while (scanned < arcNum) {
      const segmentEnd = Math.min(m, j + remaining, j + arcNum - scanned);
      const base = i * m;
      const piI = pi[i];
      for (let jj = j; jj < segmentEnd; jj++) {
        const c = cost[base + jj] + piI - piDemand[jj];
        if (c < min && state[base + jj] !== STATE_TREE) {
          min = c;
          minArc = base + jj;
        }
      }
      const len = segmentEnd - j;
      scanned += len;
      remaining -= len;
      j = segmentEnd;
      if (j === m) {
        j = 0;
        i++;
        if (i === n) i = 0;
      }
      if (remaining === 0) {
        if (minArc >= 0 && this.isImproving(min, minArc)) {
          this.inArc = minArc;
          this.nextArc = i * m + j;
          return true;
        }
        remaining = blockSize;
      }
    }
    if (minArc >= 0 && this.isImproving(min, minArc)) {
      this.inArc = minArc;
      this.nextArc = i * m + j;
      return true;
    }
    return false;
  }

  /** POT's guard against cycling on rounding noise: the reduced cost must be negative relative to its terms. */
  private isImproving(reducedCost: number, e: number): boolean {
    const i = (e / this.m) | 0;
    const j = e - i * this.m;
    const scale = Math.max(Math.abs(this.pi[i]), Math.abs(this.pi[this.n + j]), Math.abs(this.cost[e]));
    return reducedCost < -PRICING_EPS * scale;
  }

  private findJoinNode(): void {
    let u = this.sourceOf(this.inArc);
    let v = this.targetOf(this.inArc);
    const succNum = this.succNum;
    const parent = this.parent;
    while (u !== v) {
      if (succNum[u] < succNum[v]) u = parent[u];
      else v = parent[v];
    }
    this.join = u;
  }

  /**
   * The leaving arc is the first blocking arc of the cycle in the flow direction. With uncapacitated arcs
   * only arcs whose flow decreases can block: on the path source -> join those pointing up the tree,
   * on target -> join those pointing down. Returns false when nothing blocks (unbounded).
   */
  private findLeavingArc(): boolean {
    const first = this.sourceOf(this.inArc);
    const second = this.targetOf(this.inArc);
    const join = this.join;
    const parent = this.parent;
    const forward = this.forward;
    const flow = this.flowOfPred;
    let delta = Number.POSITIVE_INFINITY;
    let result = 0;
    let uOut = -1;
    for (let u = first; u !== join; u = parent[u]) {
      if (forward[u] && flow[u] < delta) {
        delta = flow[u];
        uOut = u;
        result = 1;
      }
    }
    for (let u = second; u !== join; u = parent[u]) {
      if (!forward[u] && flow[u] <= delta) {
        delta = flow[u];
        uOut = u;
        result = 2;
      }
    }
    if (result === 0) return false;
    if (result === 1) {
      this.uIn = first;
      this.vIn = second;
    } else {
      this.uIn = second;
      this.vIn = first;
    }
    this.uOut = uOut;
    this.delta = delta;
    return true;
  }

  private changeFlow(): void {
    const delta = this.delta;
    const join = this.join;
    const parent = this.parent;
    const forward = this.forward;
    const flow = this.flowOfPred;
    if (delta > 0) {
      for (let u = this.sourceOf(this.inArc); u !== join; u = parent[u])
        flow[u] += forward[u] ? -delta : delta;
      for (let u = this.targetOf(this.inArc); u !== join; u = parent[u])
        flow[u] += forward[u] ? delta : -delta;
    }
    if (this.inArc < this.arcNum) this.state[this.inArc] = STATE_TREE;
    const leaving = this.pred[this.uOut];
    if (leaving < this.arcNum) this.state[leaving] = STATE_LOWER;
  }

  /** LEMON's updateTreeStructure: re-hang the stem u_in .. u_out under v_in and repair the thread order. */
  private updateTreeStructure(): void {
    const parent = this.parent;
    const thread = this.thread;
    const revThread = this.revThread;
    const succNum = this.succNum;
    const lastSucc = this.lastSucc;
    const pred = this.pred;
    const forward = this.forward;
    const flow = this.flowOfPred;
    const dirty = this.dirtyRevs;
    const uIn = this.uIn;
    const vIn = this.vIn;
    const uOut = this.uOut;
    const join = this.join;
    const inArc = this.inArc;

    const oldRevThread = revThread[uOut];
    const oldSuccNum = succNum[uOut];
    const oldLastSucc = lastSucc[uOut];
    const vOut = parent[uOut];

    let u = lastSucc[uIn];
    let right = thread[u];
    let last: number;
    // When the node before u_out in the thread is v_in, join and v_out coincide.
    if (oldRevThread === vIn) last = thread[lastSucc[uOut]];
    else last = thread[vIn];

    // Walk the stem from u_in up to u_out, reversing parents and splicing each subtree into the thread.
    let stem = uIn;
    thread[vIn] = uIn;
    let dirtyCount = 0;
    dirty[dirtyCount++] = vIn;
    let parStem = vIn;
    while (stem !== uOut) {
      const newStem = parent[stem];
      thread[u] = newStem;
      dirty[dirtyCount++] = u;
      const w = revThread[stem];
      thread[w] = right;
      revThread[right] = w;
      parent[stem] = parStem;
      parStem = stem;
      stem = newStem;
      u = lastSucc[stem] === lastSucc[parStem] ? revThread[parStem] : lastSucc[stem];
      right = thread[u];
    }
    parent[uOut] = parStem;
    thread[u] = last;
    revThread[last] = u;
    lastSucc[uOut] = u;

    if (oldRevThread !== vIn) {
      thread[oldRevThread] = right;
      revThread[right] = oldRevThread;
    }
    for (let k = 0; k < dirtyCount; k++) {
      const d = dirty[k];
      revThread[thread[d]] = d;
    }

    // Stem nodes take over the pred arc (and its flow) of their old child; successor counts flip.
    let tmpSc = 0;
    const tmpLs = lastSucc[uOut];
    u = uOut;
    while (u !== uIn) {
      const w = parent[u];
      pred[u] = pred[w];
      flow[u] = flow[w];
      forward[u] = forward[w] ? 0 : 1;
      tmpSc += succNum[u] - succNum[w];
      succNum[u] = tmpSc;
      lastSucc[w] = tmpLs;
      u = w;
    }
    pred[uIn] = inArc;
    flow[uIn] = this.delta;
    forward[uIn] = uIn === this.sourceOf(inArc) ? 1 : 0;
    succNum[uIn] = oldSuccNum;

    let upLimitIn = -1;
    let upLimitOut = -1;
    if (lastSucc[join] === vIn) upLimitOut = join;
    else upLimitIn = join;

    for (u = vIn; u !== upLimitIn && lastSucc[u] === vIn; u = parent[u]) lastSucc[u] = lastSucc[uOut];
    if (join !== oldRevThread && vIn !== oldRevThread) {
      for (u = vOut; u !== upLimitOut && lastSucc[u] === oldLastSucc; u = parent[u])
        lastSucc[u] = oldRevThread;
    } else {
      for (u = vOut; u !== upLimitOut && lastSucc[u] === oldLastSucc; u = parent[u])
        lastSucc[u] = lastSucc[uOut];
    }
    for (u = vIn; u !== join; u = parent[u]) succNum[u] += oldSuccNum;
    for (u = vOut; u !== join; u = parent[u]) succNum[u] -= oldSuccNum;
  }

  /** Shift the potentials of the moved subtree so the entering arc has zero reduced cost. */
  private updatePotential(): void {
    const uIn = this.uIn;
    const e = this.pred[uIn];
    const c = this.costOf(e);
    const pi = this.pi;
    const sigma = this.forward[uIn] ? pi[this.vIn] - pi[uIn] - c : pi[this.vIn] - pi[uIn] + c;
    const thread = this.thread;
    const end = thread[this.lastSucc[uIn]];
    for (let u = uIn; u !== end; u = thread[u]) pi[u] += sigma;
  }

  run(maxIter: number, control: SolveControl): 'optimal' | 'infeasible' | 'max_iter_reached' | 'unbounded' {
    // Checking the signal costs a syscall-free property read; every 1024 pivots keeps it invisible.
    const checkMask = 1023;
    while (this.findEnteringArc()) {
      if (this.iterations >= maxIter) return 'max_iter_reached';
      this.iterations++;
      if ((this.iterations & checkMask) === 0) {
        throwIfAborted(control.signal);
        control.onProgress?.(
          Math.min(1, this.iterations / maxIter),
          `network simplex pivot ${this.iterations}`,
        );
      }
      this.findJoinNode();
      if (!this.findLeavingArc()) return 'unbounded';
      this.changeFlow();
      this.updateTreeStructure();
      this.updatePotential();
    }
    // Artificial arcs must end empty; allow rounding noise relative to the total mass.
    let mass = 0;
    for (let u = 0; u < this.nodeNum; u++) if (this.supply[u] > 0) mass += this.supply[u];
    const tol = 1e-12 * Math.max(mass, 1e-300);
    for (let u = 0; u < this.nodeNum; u++) {
      if (this.pred[u] >= this.arcNum && Math.abs(this.flowOfPred[u]) > tol) return 'infeasible';
    }
    return 'optimal';
  }

  /** The tree's real arcs with positive flow, sorted by row then column, and their cost. */
  extractPlan(): { plan: SparsePlan; cost: number } {
    const entries: number[] = [];
    for (let u = 0; u < this.nodeNum; u++) {
      const e = this.pred[u];
      if (e < this.arcNum && this.flowOfPred[u] > 0) entries.push(e, u);
    }
    const count = entries.length / 2;
    const order = new Array<number>(count);
    for (let k = 0; k < count; k++) order[k] = k;
    order.sort((x, y) => entries[2 * x] - entries[2 * y]);
    const rows = new Int32Array(count);
    const cols = new Int32Array(count);
    const values = new Float64Array(count);
    let cost = 0;
    for (let k = 0; k < count; k++) {
      const e = entries[2 * order[k]];
      const u = entries[2 * order[k] + 1];
      const i = (e / this.m) | 0;
      rows[k] = i;
      cols[k] = e - i * this.m;
      values[k] = this.flowOfPred[u];
      cost += values[k] * this.cost[e];
    }
    return { plan: { rows, cols, values }, cost };
  }
}
