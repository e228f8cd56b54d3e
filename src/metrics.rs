//! Classification metrics: the confusion matrix and what follows from it.

/// Counts of (true class, predicted class).
///
/// # Shapes
/// `counts: (classes * classes,)`, row = true class, column = prediction.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Confusion {
    pub classes: usize,
    pub counts: Vec<u32>,
}

impl Confusion {
    /// The counts as rows: `rows()[true class][predicted class]`.
    pub fn rows(&self) -> Vec<Vec<u32>> {
        self.counts
            .chunks(self.classes.max(1))
            .map(<[u32]>::to_vec)
            .collect()
    }

    /// Tallies `labels` against `predictions`.
    pub fn new(labels: &[u8], predictions: &[u8], classes: usize) -> Self {
        let mut counts = vec![0u32; classes * classes];
        for (&t, &p) in labels.iter().zip(predictions) {
            counts[t as usize * classes + p as usize] += 1;
        }
        Confusion { classes, counts }
    }

    /// Count of true class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u32 {
        self.counts[t * self.classes + p]
    }

    /// Fraction predicted correctly.
    pub fn accuracy(&self) -> f32 {
        let total: u32 = self.counts.iter().sum();
        let right: u32 = (0..self.classes).map(|c| self.get(c, c)).sum();
        right as f32 / total.max(1) as f32
    }

    /// Of the examples predicted as `c`, the fraction that are `c` (0 if none).
    pub fn precision(&self, c: usize) -> f32 {
        let predicted: u32 = (0..self.classes).map(|t| self.get(t, c)).sum();
        self.get(c, c) as f32 / predicted.max(1) as f32
    }

    /// Of the examples of class `c`, the fraction predicted as `c` (0 if none).
    pub fn recall(&self, c: usize) -> f32 {
        let actual: u32 = (0..self.classes).map(|p| self.get(c, p)).sum();
        self.get(c, c) as f32 / actual.max(1) as f32
    }

    /// Per-class precision and recall, then the matrix, as a text table.
    pub fn table(&self, names: &[String]) -> String {
        let mut s = String::from("class          precision  recall\n");
        for (c, name) in names.iter().enumerate().take(self.classes) {
            s += &format!(
                "{:<14} {:>9.4} {:>7.4}\n",
                name,
                self.precision(c),
                self.recall(c)
            );
        }
        s += "\nconfusion matrix (rows: true class, columns: predicted)\n      ";
        for p in 0..self.classes {
            s += &format!("{p:>6}");
        }
        s.push('\n');
        for t in 0..self.classes {
            s += &format!("{t:>5} ");
            for p in 0..self.classes {
                s += &format!("{:>6}", self.get(t, p));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_precision_recall() {
        let c = Confusion::new(&[0, 0, 1, 1, 1, 2], &[0, 1, 1, 1, 2, 2], 3);
        assert_eq!(c.get(1, 1), 2);
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-6);
        assert!((c.precision(1) - 2.0 / 3.0).abs() < 1e-6);
        assert!((c.recall(1) - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(c.recall(2), 1.0);
        assert!(
            c.table(&["a".into(), "b".into(), "c".into()])
                .contains("confusion matrix")
        );
    }
}
