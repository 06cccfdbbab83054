//! Reporting: the spread's percentiles, how soon it settles after a change, and the
//! table rows.

use crate::model::{Algo, Control, END_MS, SETTLE_MS, Scenario};
use crate::sim::{Outcome, run};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) whole: [f64; 3],
    pub(crate) steady: [f64; 3],
    /// p95 of the spread 0-0.5, 0.5-1, 1-1.5, 1.5-3 s after a change.
    pub(crate) after: [f64; 4],
    /// Median time to under 50 ms (held 1 s) after a change other than a pause, and
    /// the share of those changes that got there within 1.5 s.
    pub(crate) settle_median: f64,
    pub(crate) settled_in_1_5: f64,
    pub(crate) clock_error_p95: f64,
    pub(crate) seeks_per_min: f64,
    pub(crate) rates_per_min: f64,
    pub(crate) resyncs: u64,
}

/// Time since the last change before `t` (ms).
fn since_change(changes: &[(f64, bool)], t: f64) -> f64 {
    changes
        .iter()
        .rev()
        .find(|c| c.0 <= t)
        .map_or(f64::INFINITY, |c| t - c.0)
}

/// How long after each change (not a pause) the spread went under 50 ms and stayed
/// there for 1 s, before the next change; `None` when it never did.
fn settle_times(o: &Outcome) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for (k, &(at, pause)) in o.changes.iter().enumerate() {
        if pause {
            continue;
        }
        let next = o.changes.get(k + 1).map_or(END_MS, |c| c.0);
        let xs: Vec<(f64, f64)> = o
            .samples
            .iter()
            .copied()
            .filter(|s| s.0 >= at && s.0 < next)
            .collect();
        let found = (0..xs.len()).find(|&j| {
            xs[j].1 < 50.0
                && xs[j].0 + 1_000.0 <= next
                && xs[j..]
                    .iter()
                    .take_while(|s| s.0 < xs[j].0 + 1_000.0)
                    .all(|s| s.1 < 50.0)
        });
        out.push(found.map(|j| xs[j].0 - at));
    }
    out
}

fn summarize(runs: Vec<Outcome>) -> Summary {
    let mut whole = Vec::new();
    let mut steady = Vec::new();
    let mut after: [Vec<f64>; 4] = Default::default();
    let mut settles = Vec::new();
    let mut clock = Vec::new();
    let (mut seeks, mut rates, mut resyncs, mut minutes) = (0, 0, 0, 0.0);
    for o in &runs {
        for &(t, spread) in &o.samples {
            whole.push(spread);
            let since = since_change(&o.changes, t);
            if since >= SETTLE_MS {
                steady.push(spread);
            } else {
                let bucket = match since {
                    s if s < 500.0 => 0,
                    s if s < 1_000.0 => 1,
                    s if s < 1_500.0 => 2,
                    _ => 3,
                };
                after[bucket].push(spread);
            }
        }
        settles.extend(settle_times(o));
        clock.extend_from_slice(&o.clock_errors);
        seeks += o.seeks;
        rates += o.rate_changes;
        resyncs += o.resyncs;
        minutes += o.member_minutes;
    }
    for xs in [&mut whole, &mut steady, &mut clock] {
        xs.sort_by(f64::total_cmp);
    }
    after.iter_mut().for_each(|xs| xs.sort_by(f64::total_cmp));
    let mut settled: Vec<f64> = settles.iter().map(|s| s.unwrap_or(f64::INFINITY)).collect();
    settled.sort_by(f64::total_cmp);
    let tri = |xs: &[f64]| {
        [
            percentile(xs, 50.0),
            percentile(xs, 95.0),
            percentile(xs, 100.0),
        ]
    };
    Summary {
        whole: tri(&whole),
        steady: tri(&steady),
        after: [0, 1, 2, 3].map(|b| percentile(&after[b], 95.0)),
        settle_median: percentile(&settled, 50.0),
        settled_in_1_5: settled.iter().filter(|s| **s <= 1_500.0).count() as f64
            / settled.len().max(1) as f64,
        clock_error_p95: percentile(&clock, 95.0),
        seeks_per_min: seeks as f64 / minutes,
        rates_per_min: rates as f64 / minutes,
        resyncs,
    }
}

pub(crate) fn simulate(
    scn: &Scenario,
    algo: Algo,
    timeline: &'static [(f64, Control)],
    members: usize,
    seeds: u64,
) -> Summary {
    summarize(
        (1..=seeds)
            .map(|seed| run(scn, algo, timeline, members, seed))
            .collect(),
    )
}

pub(crate) fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".to_owned()
    } else if v.is_infinite() {
        "never".to_owned()
    } else {
        format!("{v:.0}")
    }
}

pub(crate) fn row(scenario: &str, label: &str, s: &Summary) -> String {
    format!(
        "| {scenario} | {label} | {} | **{}** | {} | {} | **{}** | {} | {} / {} / {} / {} | {} | {:.0}% | {} | {:.2} | {:.1} |",
        ms(s.whole[0]),
        ms(s.whole[1]),
        ms(s.whole[2]),
        ms(s.steady[0]),
        ms(s.steady[1]),
        ms(s.steady[2]),
        ms(s.after[0]),
        ms(s.after[1]),
        ms(s.after[2]),
        ms(s.after[3]),
        ms(s.settle_median),
        s.settled_in_1_5 * 100.0,
        ms(s.clock_error_p95),
        s.seeks_per_min,
        s.rates_per_min,
    )
}

pub(crate) const HEADER: &str = "| scenario | algorithm | whole run p50 | p95 | max | steady p50 | p95 | max | p95 0-0.5 / 0.5-1 / 1-1.5 / 1.5-3 s after a change | to < 50 ms, median | within 1.5 s | clock error p95 | seeks /member/min | rate changes /member/min |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
