/** Graph algorithms over task dependencies: order, cycles, the closure of a selection. */

/** A dependency edge, `from` needs `to`. */
export interface Edge<T> {
  from: string;
  to: string;
  data: T;
}

/** Every elementary cycle found by depth-first search, each as its list of edges. */
export function findCycles<T>(nodes: Iterable<string>, edges: readonly Edge<T>[]): Edge<T>[][] {
  const outgoing = new Map<string, Edge<T>[]>();
  for (const edge of edges) outgoing.set(edge.from, [...(outgoing.get(edge.from) ?? []), edge]);
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: Edge<T>[] = [];
  const cycles: Edge<T>[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'visiting');
    for (const edge of outgoing.get(node) ?? []) {
      const next = state.get(edge.to);
      if (next === 'visiting') {
        const start = stack.findIndex((item) => item.from === edge.to);
        cycles.push([...stack.slice(start === -1 ? stack.length : start), edge]);
      } else if (next === undefined) {
        stack.push(edge);
        visit(edge.to);
        stack.pop();
      }
    }
    state.set(node, 'done');
  };
  for (const node of nodes) if (!state.has(node)) visit(node);
  return cycles;
}

/** Nodes in dependency order (dependencies first), stable by declaration order. Assumes no cycles. */
export function topologicalOrder(nodes: readonly string[], needs: (node: string) => readonly string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (node: string): void => {
    if (seen.has(node)) return;
    seen.add(node);
    for (const dep of needs(node)) visit(dep);
    order.push(node);
  };
  for (const node of nodes) visit(node);
  return order;
}

/** The selected nodes and everything they need, transitively. */
export function closure(selected: Iterable<string>, needs: (node: string) => readonly string[]): Set<string> {
  const result = new Set<string>();
  const visit = (node: string): void => {
    if (result.has(node)) return;
    result.add(node);
    for (const dep of needs(node)) visit(dep);
  };
  for (const node of selected) visit(node);
  return result;
}
