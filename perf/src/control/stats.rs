//! Latency summaries from every recorded sample (exact, nearest-rank percentiles): the control
//! plane's request counts are small enough to keep each one.

use serde::{Deserialize, Serialize};

/// Percentiles and extremes of a set of durations, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Smallest.
    pub min_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// The nearest-rank percentile of sorted values: the smallest value with at least `q` (0..=1) of
/// the values at or below it. `None` when empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl LatencySummary {
    /// Summarises nanosecond samples (sorted in place); `None` when there are none.
    pub fn from_nanos(samples: &mut [u64]) -> Option<LatencySummary> {
        samples.sort_unstable();
        let us = |q: f64| percentile(samples, q).map(|ns| ns as f64 / 1e3);
        let sum: u128 = samples.iter().map(|&v| u128::from(v)).sum();
        Some(LatencySummary {
            count: samples.len() as u64,
            mean_us: sum as f64 / samples.len().max(1) as f64 / 1e3,
            p50_us: us(0.5)?,
            p99_us: us(0.99)?,
            p999_us: us(0.999)?,
            min_us: us(0.0)?,
            max_us: us(1.0)?,
        })
    }

    /// Summarises microsecond samples.
    pub fn from_micros(samples: &[u64]) -> Option<LatencySummary> {
        let mut ns: Vec<u64> = samples.iter().map(|&us| us.saturating_mul(1000)).collect();
        LatencySummary::from_nanos(&mut ns)
    }
}

/// The median of `values` (the lower middle for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_thousand() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.99), Some(990));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1), "q = 0 is the minimum");
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn small_sets_round_up_to_the_next_sample() {
        // 3 samples: p50 is the 2nd (rank ceil(1.5) = 2), p99 and p99.9 are the largest.
        let v = [10, 20, 30];
        assert_eq!(percentile(&v, 0.5), Some(20));
        assert_eq!(percentile(&v, 0.99), Some(30));
        assert_eq!(percentile(&v, 0.999), Some(30));
        assert_eq!(percentile(&[7], 0.5), Some(7));
    }

    #[test]
    fn summary_sorts_and_converts_to_microseconds() {
        // A shuffled 1..=100 ms-scale set with one outlier.
        let mut ns: Vec<u64> = (1..=99).rev().map(|i| i * 1000).collect();
        ns.push(5_000_000);
        let s = LatencySummary::from_nanos(&mut ns).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.p999_us, 5000.0, "the outlier is the 100th of 100");
        assert_eq!(s.min_us, 1.0);
        assert_eq!(s.max_us, 5000.0);
        assert!((s.mean_us - (4950.0 + 5000.0) / 100.0).abs() < 1e-9, "{}", s.mean_us);
        assert_eq!(LatencySummary::from_nanos(&mut []), None);
        assert_eq!(LatencySummary::from_micros(&[3, 1, 2]).unwrap().p50_us, 2.0);
    }

    #[test]
    fn median_takes_the_lower_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
