/**
 * A small metrics registry rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * Services create counters and gauges with fixed label names and either update them as events happen or
 * register a collector that copies live values in just before each scrape (cheaper for hot paths: a relay
 * keeps plain numbers and the collector reads them). Names and label names are validated when the metric is
 * created; HELP text and label values are escaped as the format requires (`\\`, `\n`, and `"` in labels).
 */

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

export class Metric {
  readonly #series = new Map<string, { labels: string[]; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name "${name}"`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__")) throw new Error(`invalid label name "${l}" on ${name}`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new Error(`duplicate label name on ${name}`);
  }

  #values(labels: Labels): string[] {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !this.labelNames.every((l) => l in labels)) {
      throw new Error(
        `${this.name}: expected labels {${this.labelNames.join(",")}}, got {${keys.join(",")}}`,
      );
    }
    return this.labelNames.map((l) => String(labels[l]));
  }

  set(labels: Labels, value: number): void {
    const vals = this.#values(labels);
    this.#series.set(JSON.stringify(vals), { labels: vals, value });
  }

  inc(labels: Labels = {}, by = 1): void {
    if (this.type === "counter" && by < 0) throw new Error(`${this.name}: a counter cannot decrease`);
    const vals = this.#values(labels);
    const key = JSON.stringify(vals);
    const s = this.#series.get(key);
    if (s) s.value += by;
    else this.#series.set(key, { labels: vals, value: by });
  }

  dec(labels: Labels = {}, by = 1): void {
    if (this.type === "counter") throw new Error(`${this.name}: a counter cannot decrease`);
    this.inc(labels, -by);
  }

  get(labels: Labels = {}): number | undefined {
    return this.#series.get(JSON.stringify(this.#values(labels)))?.value;
  }

  remove(labels: Labels): void {
    this.#series.delete(JSON.stringify(this.#values(labels)));
  }

  /** Drops every series (collectors that rebuild their series each scrape call this first). */
  reset(): void {
    this.#series.clear();
  }

  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const { labels, value } of this.#series.values()) {
      const lbl = labels.length === 0
        ? ""
        : `{${labels.map((v, i) => `${this.labelNames[i]}="${escapeLabelValue(v)}"`).join(",")}}`;
      out += `${this.name}${lbl} ${formatValue(value)}\n`;
    }
    return out;
  }
}

export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();
  readonly #collectors = new Set<() => void>();

  #get(name: string, help: string, type: MetricType, labelNames: readonly string[]): Metric {
    const existing = this.#metrics.get(name);
    if (existing) {
      if (existing.type !== type || existing.labelNames.join(",") !== labelNames.join(",")) {
        throw new Error(`metric ${name} already registered with another type or labels`);
      }
      return existing;
    }
    const m = new Metric(name, help, type, labelNames);
    this.#metrics.set(name, m);
    return m;
  }

  /** Returns the counter `name`, creating it on first use (same name + labels = same metric). */
  counter(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return this.#get(name, help, "counter", labelNames);
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Metric {
    return this.#get(name, help, "gauge", labelNames);
  }

  /** Runs before every render; returns a function that removes it. */
  addCollector(fn: () => void): () => void {
    this.#collectors.add(fn);
    return () => this.#collectors.delete(fn);
  }

  render(): string {
    for (const c of this.#collectors) {
      try {
        c();
      } catch {
        // A broken collector must not take the whole scrape down; its metrics keep their last values.
      }
    }
    let out = "";
    for (const m of this.#metrics.values()) out += m.render();
    return out;
  }
}
