//! `midogw-perf compare`: the differences between two runs, and whether any is a regression.
//!
//! Gated metrics, by default: the ratio to testpmd io (higher is better; measured minutes apart
//! on one machine, so it travels between runs far better than raw Mpps) and instructions per
//! packet (lower is better; stable to a fraction of a percent). Raw Mpps is shown and can be
//! gated with `--metric mpps`, but on a machine whose speed swings by 30 % it is a poor gate.

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::Error;
use crate::report::{RunReport, MIDOGW};

/// A figure `compare` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// midogw / testpmd io, median of the per-round ratios.
    RatioIo,
    /// Callgrind instructions per packet.
    Ipp,
    /// midogw's median Mpps.
    Mpps,
}

impl Metric {
    /// The default gate.
    pub const DEFAULT: &'static [Metric] = &[Metric::RatioIo, Metric::Ipp];

    fn name(self) -> &'static str {
        match self {
            Metric::RatioIo => "ratio to testpmd io",
            Metric::Ipp => "instructions/packet",
            Metric::Mpps => "midogw Mpps",
        }
    }

    fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Ipp)
    }

    fn value(self, report: &RunReport, scenario: &str) -> Option<f64> {
        let sc = report.scenario(scenario)?;
        match self {
            Metric::RatioIo => sc.ratio_to_testpmd_io.as_ref().map(|r| r.median),
            Metric::Ipp => sc.instructions.as_ref().map(|i| i.instructions_per_packet),
            Metric::Mpps => sc.dut(MIDOGW).map(|d| d.median.mpps),
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Scenario.
    pub scenario: String,
    /// What.
    pub metric: Metric,
    /// In the baseline.
    pub baseline: f64,
    /// In the current run.
    pub current: f64,
    /// (current - baseline) / baseline, percent.
    pub change_pct: f64,
    /// Worse than the threshold allows, on a gated metric.
    pub regression: bool,
    /// Whether this metric is gated.
    pub gated: bool,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Threshold, percent.
    pub threshold_pct: f64,
    /// Every figure present in both runs.
    pub differences: Vec<Difference>,
    /// Scenarios of the baseline the current run lacks.
    pub missing: Vec<String>,
}

impl Comparison {
    /// True when any gated figure got worse by more than the threshold.
    pub fn regressed(&self) -> bool {
        self.differences.iter().any(|d| d.regression)
    }

    /// The table of differences, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("| scenario | metric | baseline | current | change | verdict |\n|---|---|---:|---:|---:|---|\n");
        for d in &self.differences {
            let verdict = match (d.regression, d.gated) {
                (true, _) => format!("REGRESSION (beyond {}%)", self.threshold_pct),
                (false, true) => "ok".into(),
                (false, false) => "not gated".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} | {:.3} | {:+.1}% | {} |",
                d.scenario,
                d.metric.name(),
                d.baseline,
                d.current,
                d.change_pct,
                verdict
            );
        }
        for m in &self.missing {
            let _ = writeln!(md, "| {m} | - | - | missing | - | not in current run |");
        }
        md
    }
}

/// Compares `current` against `baseline`: a gated metric regresses when it is worse by more than
/// `threshold_pct` percent (lower for higher-is-better figures, higher for instruction counts).
pub fn compare(
    baseline: &RunReport,
    current: &RunReport,
    threshold_pct: f64,
    gated: &[Metric],
) -> Result<Comparison, Error> {
    if !(threshold_pct >= 0.0 && threshold_pct.is_finite()) {
        return Err(Error::Compare(format!("threshold {threshold_pct}% must be a non-negative number")));
    }
    let mut differences = Vec::new();
    let mut missing = Vec::new();
    for sc in &baseline.scenarios {
        if current.scenario(&sc.scenario).is_none() {
            missing.push(sc.scenario.clone());
            continue;
        }
        for metric in [Metric::RatioIo, Metric::Ipp, Metric::Mpps] {
            let (Some(b), Some(c)) = (metric.value(baseline, &sc.scenario), metric.value(current, &sc.scenario)) else {
                continue;
            };
            let change_pct = if b == 0.0 { 0.0 } else { (c - b) / b * 100.0 };
            let worse_pct = if metric.higher_is_better() { -change_pct } else { change_pct };
            let is_gated = gated.contains(&metric);
            differences.push(Difference {
                scenario: sc.scenario.clone(),
                metric,
                baseline: b,
                current: c,
                change_pct,
                regression: is_gated && worse_pct > threshold_pct,
                gated: is_gated,
            });
        }
    }
    if differences.is_empty() {
        return Err(Error::Compare("the two reports have no figure in common".into()));
    }
    Ok(Comparison { threshold_pct, differences, missing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synthetic_report as report;

    #[test]
    fn a_regression_beyond_the_threshold_is_caught() {
        let base = report(&[9.5, 9.4, 9.6], &[10.0, 10.0, 10.0], Some(40.0));
        let cur = report(&[8.0, 8.1, 7.9], &[10.0, 10.0, 10.0], Some(40.0));
        let c = compare(&base, &cur, 5.0, Metric::DEFAULT).unwrap();
        assert!(c.regressed());
        let d = c.differences.iter().find(|d| d.metric == Metric::RatioIo).unwrap();
        assert!(d.regression && d.change_pct < -10.0, "{d:?}");
        assert!(c.to_markdown().contains("REGRESSION"));
    }

    #[test]
    fn noise_within_the_threshold_is_not() {
        let base = report(&[9.5, 9.4, 9.6], &[10.0, 10.0, 10.0], Some(40.0));
        // Machine 25% slower, both devices alike: ratio unchanged; ipp +1%.
        let cur = report(&[7.1, 7.0, 7.2], &[7.5, 7.4, 7.6], Some(40.4));
        let c = compare(&base, &cur, 5.0, Metric::DEFAULT).unwrap();
        assert!(!c.regressed(), "{}", c.to_markdown());
        let mpps = c.differences.iter().find(|d| d.metric == Metric::Mpps).unwrap();
        assert!(!mpps.regression && !mpps.gated, "raw Mpps is shown, not gated by default");
        assert!(compare(&base, &cur, 5.0, &[Metric::Mpps]).unwrap().regressed(), "unless asked for");
    }

    #[test]
    fn more_instructions_per_packet_is_a_regression_fewer_is_not() {
        let base = report(&[9.5], &[10.0], Some(40.0));
        assert!(compare(&base, &report(&[9.5], &[10.0], Some(44.0)), 5.0, Metric::DEFAULT).unwrap().regressed());
        assert!(!compare(&base, &report(&[9.5], &[10.0], Some(30.0)), 5.0, Metric::DEFAULT).unwrap().regressed());
    }

    #[test]
    fn improvements_and_missing_scenarios_do_not_fail() {
        let base = report(&[9.0], &[10.0], None);
        let cur = report(&[9.9], &[10.0], None);
        let c = compare(&base, &cur, 5.0, Metric::DEFAULT).unwrap();
        assert!(!c.regressed());
        let mut other = cur.clone();
        other.scenarios[0].scenario = "other".into();
        assert!(compare(&base, &other, 5.0, Metric::DEFAULT).is_err(), "nothing in common");
        assert!(compare(&base, &cur, -1.0, Metric::DEFAULT).is_err());
    }
}
