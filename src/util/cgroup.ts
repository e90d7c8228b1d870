/**
 * The container's memory limit, read from the cgroup filesystem, and the compute workers' heap cap derived from it.
 *
 * A compute worker's heap cap (WORKER_MAX_HEAP_MB) exists so that a runaway task kills only its worker thread
 * (500 TW_WORKER_CRASHED) and the process lives on. That only works if every worker can reach its cap before the
 * container as a whole reaches its memory limit: past the limit the kernel OOM-kills the whole process, with no
 * answer to anyone. So when WORKER_MAX_HEAP_MB is not set, the cap is derived from the limit found here.
 *
 * cgroup v2: `<root>/<path>/memory.max`, where `<path>` comes from the `0::<path>` line of /proc/self/cgroup
 * (`/` inside a container with its own cgroup namespace, the usual case); "max" means no limit.
 * cgroup v1: `<root>/memory/<path>/memory.limit_in_bytes`, `<path>` from the `memory` line; an unlimited group
 * reports a huge number (9223372036854771712), read as no limit. The limit of a group is the smallest of its own
 * and its ancestors' (a container runtime may put the limit one level up), so the walk goes up to the root.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Values at or above this (1 PiB) are "no limit" (cgroup v1 reports unlimited as about 2^63). */
const UNLIMITED_BYTES = 2 ** 50;
const MIB = 1024 * 1024;

export interface CgroupPaths {
  /** Where the cgroup filesystem is mounted: /sys/fs/cgroup. */
  root: string;
  /** The text of /proc/self/cgroup (which group this process is in); absent: the root group. */
  selfCgroup?: string;
}

function readLimit(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  if (text === 'max' || !/^\d+$/.test(text)) return null;
  const bytes = Number(text);
  return bytes > 0 && bytes < UNLIMITED_BYTES ? bytes : null;
}

/** The group's directory and each ancestor's, up to the hierarchy's root (deepest first). */
function groupAndAncestors(base: string, groupPath: string): string[] {
  const parts = groupPath.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
  const dirs: string[] = [];
  for (let n = parts.length; n >= 0; n--) dirs.push(path.join(base, ...parts.slice(0, n)));
  return dirs;
}

/** The smallest value `read` finds among a group's and its ancestors' directories, or null when none is set. */
function smallestOver(base: string, groupPath: string, read: (dir: string) => number | null): number | null {
  let smallest: number | null = null;
  for (const dir of groupAndAncestors(base, groupPath)) {
    const value = read(dir);
    if (value !== null && (smallest === null || value < smallest)) smallest = value;
  }
  return smallest;
}

/**
 * Where this process's group sits in each hierarchy, from /proc/self/cgroup: v2's `0::<path>` line, and v1's
 * `<n>:<controllers>:<path>` line naming a controller (controllers may be listed together, `4:cpu,cpuacct:/path`);
 * `/` when there is no such line.
 */
function selfGroupPaths(paths: Partial<CgroupPaths>) {
  let selfCgroup = paths.selfCgroup;
  if (selfCgroup === undefined) {
    try {
      selfCgroup = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      selfCgroup = '';
    }
  }
  const lines = selfCgroup
    .split('\n')
    .map((l) => l.split(':'))
    .filter((l) => l.length >= 3);
  const pathOf = (match: (line: string[]) => boolean) => lines.find(match)?.slice(2).join(':') ?? '/';
  return {
    root: paths.root ?? '/sys/fs/cgroup',
    v2: pathOf((l) => l[0] === '0' && l[1] === ''),
    v1: (controller: string) => pathOf((l) => l[1].split(',').includes(controller)),
  };
}

/**
 * The memory limit (bytes) of the cgroup this process runs in, or null when there is none (or no cgroup
 * filesystem: macOS, Windows, a bare host). v2 is tried first, then v1.
 */
export function readCgroupMemoryLimit(paths: Partial<CgroupPaths> = {}): number | null {
  const { root, v2, v1 } = selfGroupPaths(paths);
  return (
    smallestOver(root, v2, (dir) => readLimit(path.join(dir, 'memory.max'))) ??
    smallestOver(path.join(root, 'memory'), v1('memory'), (dir) =>
      readLimit(path.join(dir, 'memory.limit_in_bytes')),
    )
  );
}

export interface HeapDerivation {
  /** The container's memory limit in bytes (null: none found). */
  limitBytes: number | null;
  /** Compute worker threads sharing it. */
  workers: number;
  /** Memory (MB) kept out of the workers' heaps: main thread, native buffers, young generations. */
  reserveMb: number;
}

/** Heap caps are never derived below this (MB): the models must still load. */
export const MIN_DERIVED_HEAP_MB = 128;
/** The cap when no container limit is found (MB): the former fixed default. */
export const UNLIMITED_HEAP_MB = 4096;

/**
 * The heap cap (MB) of each compute worker: the container's limit less the reserve, shared among the workers, at
 * least MIN_DERIVED_HEAP_MB; UNLIMITED_HEAP_MB when there is no limit. Then workers x cap + reserve <= limit, so
 * one worker (or all of them) reaches its cap, and fails alone, before the container reaches its limit.
 */
export function deriveWorkerHeapMb({ limitBytes, workers, reserveMb }: HeapDerivation): number {
  if (limitBytes === null) return UNLIMITED_HEAP_MB;
  const limitMb = Math.floor(limitBytes / MIB);
  const share = Math.floor((limitMb - reserveMb) / Math.max(1, workers));
  return Math.max(MIN_DERIVED_HEAP_MB, share);
}

let cached: number | null | undefined;
/** The container's memory limit, read once per process (it does not change while a container runs). */
export function containerMemoryLimit(): number | null {
  if (cached === undefined) cached = readCgroupMemoryLimit();
  return cached;
}

/** A group's CPU limit in cores from cgroup v2's `cpu.max` ("quota period", or "max period": none). */
function readCpuMax(dir: string): number | null {
  let text: string;
  try {
    text = readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim();
  } catch {
    return null;
  }
  const [quota, period] = text.split(/\s+/).map(Number);
  return quota > 0 && period > 0 ? quota / period : null;
}

/** The same from cgroup v1's `cpu.cfs_quota_us` (-1: none) and `cpu.cfs_period_us`. */
function readCfsQuota(dir: string): number | null {
  try {
    const quota = Number(readFileSync(path.join(dir, 'cpu.cfs_quota_us'), 'utf8').trim());
    const period = Number(readFileSync(path.join(dir, 'cpu.cfs_period_us'), 'utf8').trim());
    return quota > 0 && period > 0 ? quota / period : null;
  } catch {
    return null;
  }
}

/**
 * The CPU limit (cores, possibly fractional) of the cgroup this process runs in, the smallest of its group's and
 * its ancestors', or null when there is none. v2 (`cpu.max`) first, then v1 (`cpu.cfs_quota_us`). Node's
 * availableParallelism() counts the host's cores, not a container's CPU limit.
 */
export function readCgroupCpuLimit(paths: Partial<CgroupPaths> = {}): number | null {
  const { root, v2, v1 } = selfGroupPaths(paths);
  return smallestOver(root, v2, readCpuMax) ?? smallestOver(path.join(root, 'cpu'), v1('cpu'), readCfsQuota);
}

let cachedCpu: number | null | undefined;
/** The container's CPU limit in cores, read once per process. */
export function containerCpuLimit(): number | null {
  if (cachedCpu === undefined) cachedCpu = readCgroupCpuLimit();
  return cachedCpu;
}
