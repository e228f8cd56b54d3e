//! The lecture's claims, each checked in its quick form on real MNIST (5,000 training
//! images): the direction of every effect the issue names.

mod common;

use nnlab::study::{self, StudyData, StudyOptions};

fn data() -> (nnlab::data::Dataset, &'static nnlab::data::Dataset) {
    let m = common::mnist();
    (m.train.slice(5000..10000, "mnist train (5,000)"), &m.test)
}

fn options() -> StudyOptions {
    StudyOptions {
        quick: true,
        seed: 777,
        rt: nnlab::Runtime::default(),
    }
}

#[test]
fn deep_sigmoid_vanishes_relu_does_not() {
    let (train, test) = data();
    let t = study::depth(
        &StudyData {
            train: &train,
            test,
        },
        &options(),
    )
    .unwrap();
    let sig = t.row("sigmoid depth 16").unwrap();
    let relu = t.row("relu depth 16").unwrap();
    // the first layer's gradient is orders of magnitude below the last layer's for
    // sigmoid, not for ReLU
    assert!(sig.get("first/last").unwrap() < 1e-4, "{}", t.render());
    assert!(relu.get("first/last").unwrap() > 0.1, "{}", t.render());
    // and the deep sigmoid net stays near chance while ReLU learns
    assert!(sig.get("test acc Adam").unwrap() < 0.2, "{}", t.render());
    assert!(
        relu.get("test acc Adam").unwrap() > sig.get("test acc Adam").unwrap() + 0.4,
        "{}",
        t.render()
    );
    // shallow sigmoid nets do learn (it is depth that breaks them)
    assert!(
        t.row("sigmoid depth 2")
            .unwrap()
            .get("test acc Adam")
            .unwrap()
            > 0.5
    );
}

#[test]
fn zero_init_stays_at_chance_xavier_and_he_learn() {
    let (train, test) = data();
    let t = study::init(
        &StudyData {
            train: &train,
            test,
        },
        &options(),
    )
    .unwrap();
    let acc = |l: &str| t.row(l).unwrap().get("test acc").unwrap();
    assert!((0.08..0.13).contains(&acc("zeros")), "{}", t.render());
    assert!(
        acc("xavier-uniform") > 0.85 && acc("he-normal") > 0.85,
        "{}",
        t.render()
    );
    assert!(acc("xavier-uniform") > acc("normal:1"), "{}", t.render());
    assert!(acc("rbm (DBN pre-training)") > 0.5, "{}", t.render());
}

#[test]
fn every_activation_trains() {
    let (train, test) = data();
    let t = study::activation(
        &StudyData {
            train: &train,
            test,
        },
        &options(),
    )
    .unwrap();
    assert_eq!(t.rows.len(), 6);
    for r in &t.rows {
        assert!(r.get("test acc").unwrap() > 0.7, "{}", t.render());
    }
}

#[test]
fn dropout_narrows_the_gap() {
    let (train, test) = data();
    let t = study::dropout(
        &StudyData {
            train: &train,
            test,
        },
        &options(),
    )
    .unwrap();
    let gap = |l: &str| t.row(l).unwrap().get("gap").unwrap();
    assert!(
        t.row("keep 1").unwrap().get("train acc").unwrap() > 0.99,
        "overfits: {}",
        t.render()
    );
    assert!(gap("keep 0.5") < gap("keep 1"), "{}", t.render());
    // the one-line conclusion says what the numbers say
    assert!(
        t.conclusion.starts_with("Conclusion: without dropout")
            && t.conclusion
                .ends_with("the lecture's claim holds in this run."),
        "{}",
        t.conclusion
    );
    assert!(t.render().contains(&t.conclusion));
}

#[test]
fn ensembles_do_not_lose_to_their_members() {
    let (train, test) = data();
    let t = study::ensemble(
        &StudyData {
            train: &train,
            test,
        },
        &options(),
    )
    .unwrap();
    let last = t.rows.last().unwrap();
    let worst_member = t
        .rows
        .iter()
        .map(|r| r.get("member m acc").unwrap())
        .fold(1.0, f64::min);
    assert!(
        last.get("ensemble acc").unwrap() >= worst_member,
        "{}",
        t.render()
    );
}
