//! Medians, minima and maxima of repeated measurements.

#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        }
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// The median of the per-round ratios `self[i] / base[i]`: rounds
    /// measure both back to back, so a round the shared machine slowed
    /// slows both, and its ratio stays true where a ratio of medians taken
    /// from different rounds would not.
    pub fn ratio_to(&self, base: &Samples) -> f64 {
        Samples(self.0.iter().zip(&base.0).map(|(a, b)| a / b).collect()).median()
    }

    /// "median (min-max)" with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$})",
            self.median(),
            self.min(),
            self.max(),
            d = digits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Samples(vec![5.0, 1.0, 3.0, 9.0, 2.0]);
        assert_eq!((s.median(), s.min(), s.max()), (3.0, 1.0, 9.0));
        assert_eq!(Samples(vec![1.0, 2.0, 3.0, 4.0]).median(), 2.5);
        assert_eq!(s.show(1), "3.0 (1.0-9.0)");
    }

    #[test]
    fn ratios_are_paired_by_round() {
        // Round 1 slowed both, round 2 only the baseline: paired, the
        // ratio is still 1.5; the ratio of the medians would say 0.75.
        let a = Samples(vec![30.0, 15.0, 15.0]);
        let b = Samples(vec![20.0, 20.0, 10.0]);
        assert_eq!(a.ratio_to(&b), 1.5);
        assert_eq!(a.median() / b.median(), 0.75);
    }
}
