// LightGBM's exported trees (Booster.dump_model()), compiled into flat arrays and walked in process.
// The walk follows LightGBM's own numerical decision (tree.h, NumericalDecision), so the raw score
// equals the library's predict(raw_score=True) for the same feature values.

interface DumpSplit {
  split_feature: number;
  threshold: number;
  decision_type: string;
  default_left: boolean;
  missing_type: 'None' | 'Zero' | 'NaN';
  internal_value: number;
  left_child: DumpNode;
  right_child: DumpNode;
}
interface DumpLeaf {
  leaf_value: number;
}
type DumpNode = DumpSplit | DumpLeaf;

export interface LightGbmDump {
  objective: string;
  feature_names: string[];
  tree_info: { tree_structure: DumpNode }[];
}

const MISSING_NONE = 0;
const MISSING_ZERO = 1;
const MISSING_NAN = 2;
const ZERO_THRESHOLD = 1e-35;

/** Every tree's nodes in shared arrays; a child index < 0 is a leaf (~child indexes the leaf arrays). */
export interface Forest {
  roots: Int32Array;
  feature: Int32Array;
  threshold: Float64Array;
  missing: Uint8Array;
  defaultLeft: Uint8Array;
  left: Int32Array;
  right: Int32Array;
  nodeValue: Float64Array;
  leafValue: Float64Array;
  /** Multiplier of the raw score in the sigmoid (LightGBM's `sigmoid:` parameter of `binary`). */
  sigmoid: number;
  /** Sum over trees of the root's value: the expected raw score, the base of path contributions. */
  bias: number;
}

export function compileForest(dump: LightGbmDump, featureCount: number): Forest {
  const match = /^binary(?:\s+sigmoid:([\d.eE+-]+))?/.exec(dump.objective);
  if (!match) throw new Error(`fraud model: objective '${dump.objective}' is not binary`);
  const nodes: DumpSplit[] = [];
  const left: number[] = [];
  const right: number[] = [];
  const leaves: number[] = [];
  const compile = (node: DumpNode): number => {
    if ('leaf_value' in node) {
      leaves.push(node.leaf_value);
      return ~(leaves.length - 1);
    }
    if (node.decision_type !== '<=') throw new Error('fraud model: only numerical splits are supported');
    if (node.split_feature < 0 || node.split_feature >= featureCount)
      throw new Error(`fraud model: split on unknown feature ${node.split_feature}`);
    const index = nodes.push(node) - 1;
    left[index] = compile(node.left_child);
    right[index] = compile(node.right_child);
    return index;
  };
  const roots = dump.tree_info.map((tree) => compile(tree.tree_structure));
  const rootValue = (root: number): number => (root >= 0 ? nodes[root]!.internal_value : leaves[~root]!);
  return {
    roots: Int32Array.from(roots),
    feature: Int32Array.from(nodes, (n) => n.split_feature),
    threshold: Float64Array.from(nodes, (n) => n.threshold),
    missing: Uint8Array.from(nodes, (n) =>
      n.missing_type === 'NaN' ? MISSING_NAN : n.missing_type === 'Zero' ? MISSING_ZERO : MISSING_NONE,
    ),
    defaultLeft: Uint8Array.from(nodes, (n) => (n.default_left ? 1 : 0)),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    nodeValue: Float64Array.from(nodes, (n) => n.internal_value),
    leafValue: Float64Array.from(leaves),
    sigmoid: match[1] === undefined ? 1 : Number(match[1]),
    bias: roots.reduce((sum, root) => sum + rootValue(root), 0),
  };
}

function nextNode(forest: Forest, node: number, x: readonly number[]): number {
  let value = x[forest.feature[node]!]!;
  const missing = forest.missing[node]!;
  if (Number.isNaN(value) && missing !== MISSING_NAN) value = 0;
  if (
    (missing === MISSING_ZERO && Math.abs(value) <= ZERO_THRESHOLD) ||
    (missing === MISSING_NAN && Number.isNaN(value))
  )
    return forest.defaultLeft[node] ? forest.left[node]! : forest.right[node]!;
  return value <= forest.threshold[node]! ? forest.left[node]! : forest.right[node]!;
}

/** The raw score (log-odds), as LightGBM's predict(raw_score=True). */
export function rawScore(forest: Forest, x: readonly number[]): number {
  let sum = 0;
  for (let t = 0; t < forest.roots.length; t++) {
    let node = forest.roots[t]!;
    while (node >= 0) node = nextNode(forest, node, x);
    sum += forest.leafValue[~node]!;
  }
  return sum;
}

/**
 * The raw score split into per-feature contributions along each tree's decision path (Saabas): every
 * split adds the change of the expected value from the node to the child taken to its feature.
 * bias + sum(contributions) equals the raw score.
 */
export function pathContributions(forest: Forest, x: readonly number[], into: Float64Array): number {
  into.fill(0);
  let sum = 0;
  for (let t = 0; t < forest.roots.length; t++) {
    let node = forest.roots[t]!;
    while (node >= 0) {
      const child = nextNode(forest, node, x);
      const childValue = child >= 0 ? forest.nodeValue[child]! : forest.leafValue[~child]!;
      const feature = forest.feature[node]!;
      into[feature] = into[feature]! + childValue - forest.nodeValue[node]!;
      node = child;
    }
    sum += forest.leafValue[~node]!;
  }
  return sum;
}
