// Replays what the Rust sync crate computed (vectors written by sync/tests/js_port.rs)
// against the compiled browser port, web/demo/sync.js. Every output must be identical:
// the same IEEE operations in the same order give the same bits. Exit 1 on the first
// few differences, listed.
//
//   node web/sync/replay.mjs VECTORS.json
import { readFileSync } from "node:fs";
import {
  ClockSync,
  SyncSchedule,
  DriftController,
  DEFAULT_DRIFT_CONFIG,
  expectedPosition,
} from "../demo/sync.js";

const vectors = JSON.parse(readFileSync(process.argv[2], "utf8"));
const problems = [];
const counts = { clock: 0, schedule: 0, positions: 0, drift: 0, seeks: 0, rates: 0 };

// Rust writes a non-finite number as its name ("inf", "-inf", "NaN").
const NAMED = { inf: Infinity, "-inf": -Infinity, NaN: NaN };

function same(a, b) {
  if (typeof b === "string" && b in NAMED) {
    return Object.is(a, NAMED[b]);
  }
  if (a === null || b === null || a === undefined || b === undefined) {
    return (a ?? null) === (b ?? null);
  }
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (typeof a === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => same(a[k], b[k]));
  }
  return Object.is(a, b) || a === b;
}

function check(where, got, want) {
  if (!same(got, want) && problems.length < 20) {
    problems.push(`${where}: got ${JSON.stringify(got)}, Rust ${JSON.stringify(want)}`);
  }
}

vectors.clock.forEach((scenario, n) => {
  const clock = new ClockSync(scenario.estimator);
  scenario.ops.forEach((op, i) => {
    const where = `clock ${n} op ${i}`;
    counts.clock += 1;
    if (op.op === "add") {
      check(`${where} accepted`, clock.addSample(...op.t), op.ok);
      check(`${where} offset`, clock.offset(), op.offset);
      check(`${where} bounds`, clock.bounds(), op.bounds);
      const best = clock.best();
      check(`${where} best`, best && [best.t0, best.t1, best.t2, best.t3], op.best);
      check(`${where} len`, clock.length, op.len);
    } else if (op.op === "consistent") {
      check(`${where} consistent`, clock.isConsistent(op.sent, op.received), op.ok);
    } else {
      clock.clear();
    }
  });
});

vectors.schedule.forEach((scenario, n) => {
  const s = new SyncSchedule(scenario.start);
  scenario.ops.forEach((op, i) => {
    counts.schedule += 1;
    if (op.op === "burst") {
      s.burst(op.now);
    } else {
      check(`schedule ${n} op ${i} fire`, s.poll(op.now), op.fire);
    }
    check(`schedule ${n} op ${i} next_at`, s.nextAt(), op.next_at);
  });
});

vectors.positions.forEach((c, i) => {
  counts.positions += 1;
  check(`position ${i}`, expectedPosition(c.state, c.at), c.expected);
});

// The first drift scenarios run Rust's `DriftConfig::default()`: the port's defaults
// (its constants) must be the same.
check("the default drift config", DEFAULT_DRIFT_CONFIG, vectors.drift[0].config);

vectors.drift.forEach((scenario, n) => {
  const c = new DriftController(scenario.config);
  scenario.steps.forEach((step, i) => {
    if (step.op === "reset") {
      c.reset();
      return;
    }
    counts.drift += 1;
    const where = `drift ${n} step ${i}`;
    const action = c.update(step.local, step.player, step.expected, step.party_rate);
    check(`${where} action`, action, step.action);
    check(`${where} base_rate`, c.baseRate(step.party_rate), step.base_rate);
    check(`${where} seek_lead`, [c.seekLead(false), c.seekLead(true)], step.seek_lead);
    check(`${where} speed`, c.playerSpeed(), step.speed);
    check(`${where} pulse_cost`, c.pulseCost(), step.pulse_cost);
    check(`${where} check_interval`, c.checkInterval(), step.check_interval);
    if (step.action.kind === "seek") counts.seeks += 1;
    if (step.action.kind === "set_rate") counts.rates += 1;
  });
});

console.log(
  `clock ops ${counts.clock}, schedule ops ${counts.schedule}, positions ${counts.positions}, ` +
    `drift steps ${counts.drift} (seeks ${counts.seeks}, rate changes ${counts.rates})`,
);
if (counts.seeks === 0 || counts.rates === 0) {
  problems.push("the drift scenarios never seeked or never changed the rate");
}
if (problems.length > 0) {
  console.log(problems.join("\n"));
  process.exit(1);
}
