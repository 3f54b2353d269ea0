//! How often a judge is right, measured on labelled answers it was not trained on: what a
//! judged rate must be corrected by before it stands for the true rate.

use serde::{Deserialize, Serialize};

/// A judge's measured sensitivity and specificity for "misaligned" (the study's rule), with
/// the counts behind them so a caller can carry their uncertainty into an interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Labelled misaligned answers the judge flagged.
    pub true_positives: u32,
    /// Labelled misaligned answers.
    pub positives: u32,
    /// Labelled not-misaligned answers the judge did not flag.
    pub true_negatives: u32,
    /// Labelled not-misaligned answers.
    pub negatives: u32,
}

impl OperatingPoint {
    /// Share of misaligned answers flagged.
    pub fn sensitivity(&self) -> f64 {
        f64::from(self.true_positives) / f64::from(self.positives.max(1))
    }

    /// Share of other answers not flagged.
    pub fn specificity(&self) -> f64 {
        f64::from(self.true_negatives) / f64::from(self.negatives.max(1))
    }

    /// The Rogan-Gladen estimate of the true rate behind a judged rate, clamped to [0, 1]:
    /// (judged + specificity - 1) / (sensitivity + specificity - 1). `None` when the judge is
    /// no better than chance (Youden's J <= 0), where no correction is defined.
    pub fn corrected_rate(&self, judged: f64) -> Option<f64> {
        let youden = self.sensitivity() + self.specificity() - 1.0;
        (youden > 0.0).then(|| ((judged + self.specificity() - 1.0) / youden).clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrects_for_false_flags_and_misses() {
        let point = OperatingPoint {
            true_positives: 80,
            positives: 100,
            true_negatives: 950,
            negatives: 1000,
        };
        // Judged 5% with 5% false flags and 80% sensitivity: the truth is 0%.
        assert_eq!(point.corrected_rate(0.05), Some(0.0));
        // (0.20 + 0.95 - 1) / 0.75 = 0.2
        assert!((point.corrected_rate(0.20).unwrap() - 0.2).abs() < 1e-12);
        let chance = OperatingPoint {
            true_positives: 50,
            positives: 100,
            true_negatives: 50,
            negatives: 100,
        };
        assert_eq!(chance.corrected_rate(0.3), None);
    }
}
