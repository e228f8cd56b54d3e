//! The binary on saved models: `eval` (one model and an ensemble of several, at any
//! thread count), `predict` and its refusals, and `ensemble --save-dir`'s files.

mod common;

use common::nnlab;

/// `eval` of one tiny model (its dataset read from its metadata) and of two as an
/// ensemble, a model whose input does not fit the dataset, `predict` by index, and
/// image files refused for a model of 4x4 inputs.
#[test]
fn eval_and_predict_on_small_models_and_their_errors() {
    let d = tempfile::tempdir().unwrap();
    let m4 = common::tiny_model(d.path(), 4, 4);
    let m5 = common::tiny_model(d.path(), 5, 5);
    let data4 = d.path().join("data4x4");
    // eval of one model (its own dataset from the metadata), and of two as an ensemble
    let (ok, out, err) = nnlab(&["eval", "--model", m4.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("confusion matrix") && out.contains("precision"),
        "{out}"
    );
    let (ok, out, err) = nnlab(&[
        "eval",
        "--model",
        m4.to_str().unwrap(),
        "--model",
        m4.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ensemble"]["members"], 2);
    // a model whose input size does not match the dataset
    let (ok, _, err) = nnlab(&[
        "eval",
        "--model",
        m5.to_str().unwrap(),
        "--dataset",
        data4.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("takes 25 inputs (5x5)") && err.contains("16"),
        "{err}"
    );
    // predict by index
    let (ok, out, err) = nnlab(&[
        "predict",
        "--model",
        m4.to_str().unwrap(),
        "--index",
        "2",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    // image files for a model of 4x4 inputs are refused (images are prepared as 28x28)
    let png = d.path().join("x.png");
    image::GrayImage::from_fn(30, 30, |x, _| image::Luma([if x > 10 { 255 } else { 0 }]))
        .save(&png)
        .unwrap();
    let (ok, _, err) = nnlab(&[
        "predict",
        "--model",
        m4.to_str().unwrap(),
        "--image",
        png.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("takes 4x4 images"), "{err}");
    // a corrupt model file
    let bad = d.path().join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let (ok, _, err) = nnlab(&["eval", "--model", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("bad.safetensors") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn predict_rejects_bad_images() {
    let d = tempfile::tempdir().unwrap();
    // a 28x28 model trained on a generated folder
    let m = common::tiny_model(d.path(), 28, 28);
    let m = m.to_str().unwrap();
    let cases: Vec<(std::path::PathBuf, &str)> = {
        let junk = d.path().join("junk.png");
        std::fs::write(&junk, b"this is not a png").unwrap();
        let empty = d.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        let flat = d.path().join("flat.png");
        image::GrayImage::from_pixel(40, 30, image::Luma([200]))
            .save(&flat)
            .unwrap();
        vec![
            (junk, "cannot decode"),
            (empty, "cannot decode"),
            (flat, "all one colour"),
        ]
    };
    for (p, want) in cases {
        let (ok, _, err) = nnlab(&["predict", "--model", m, "--image", p.to_str().unwrap()]);
        assert!(
            !ok && err.contains(want) && err.contains(p.file_name().unwrap().to_str().unwrap()),
            "{want}: {err}"
        );
    }
    // a good drawing: a dark stroke on white paper of any size
    let ok_png = d.path().join("one.png");
    image::RgbImage::from_fn(120, 90, |x, y| {
        if (55..65).contains(&x) && (10..80).contains(&y) {
            image::Rgb([20, 20, 30])
        } else {
            image::Rgb([250, 250, 240])
        }
    })
    .save(&ok_png)
    .unwrap();
    let (ok, out, err) = nnlab(&["predict", "--model", m, "--image", ok_png.to_str().unwrap()]);
    assert!(ok && out.contains("1. "), "{out}{err}");
}

/// `eval -j 1` and `eval -j 2` print the same figures, to the last digit, for a
/// model trained on MNIST (whose layers take the sparse products: the images, and the
/// ReLU outputs of a trained net, are mostly zeros).
#[test]
fn eval_prints_the_same_figures_at_any_thread_count() {
    use nnlab::Runtime;
    let mnist = common::mnist();
    let train = mnist.train.slice(0..5000, "small");
    let mut cfg = nnlab::config::TrainConfig::preset("dropout").unwrap();
    cfg.epochs = 1;
    let mut t = nnlab::train::Trainer::new(&cfg, 784, 10, Runtime::default()).unwrap();
    common::fit(&mut t, &train).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    let meta = nnlab::io::ModelMeta {
        config: cfg.clone(),
        dataset: "mnist".into(),
        input_shape: (28, 28),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        metrics: Default::default(),
    };
    nnlab::io::save_model(&p, &mut t.model, &meta).unwrap();
    let eval = |threads: &str| {
        let (ok, out, err) = nnlab(&["eval", "--model", p.to_str().unwrap(), "-j", threads]);
        assert!(ok, "{err}");
        out.replace(p.to_str().unwrap(), "MODEL")
    };
    let one = eval("1");
    let acc: f32 = one
        .split("accuracy ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .expect("an accuracy figure");
    assert!(acc > 0.7, "{one}");
    assert_eq!(one, eval("2"));
    assert_eq!(one, eval("3"));
}

/// `ensemble --save-dir` writes every member as it was evaluated: `eval` of the saved
/// files gives each member's accuracy and the ensemble's as the run reported them.
#[test]
fn ensemble_members_saved_then_evaluated_agree() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 60, 20, 4, 4, 3);
    let ens = d.path().join("ens");
    let (ok, out, err) = nnlab(&[
        "ensemble",
        "--dataset",
        data.to_str().unwrap(),
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch",
        "10",
        "--validation",
        "10",
        "--members",
        "3",
        "--save-dir",
        ens.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let models: Vec<String> = (0..3)
        .map(|i| {
            ens.join(format!("member-{i}.safetensors"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["eval", "--dataset", data.to_str().unwrap(), "--json"];
    for m in &models {
        args.extend(["--model", m.as_str()]);
    }
    let (ok, out, err) = nnlab(&args);
    assert!(ok, "{err}");
    let again: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for i in 0..3 {
        assert_eq!(
            again["models"][i]["accuracy"], run["members"][i],
            "member {i}"
        );
    }
    assert_eq!(
        again["ensemble"]["accuracy_average"],
        run["ensemble_average"]
    );
}

/// An ensemble stopped by a signal keeps the members that finished: each is saved as
/// it finishes, and the run ends with an error, not with nothing.
#[cfg(unix)]
#[test]
fn an_interrupted_ensemble_keeps_its_finished_members() {
    /// Kills the run if an assertion fails before it ends.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 60, 20, 4, 4, 3);
    let ens = d.path().join("ens");
    // stderr to a file: a pipe nobody reads would fill with the progress lines and
    // stall the run
    let log = d.path().join("stderr.txt");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args([
            "ensemble",
            "--dataset",
            data.to_str().unwrap(),
            "--hidden",
            "8",
            "--epochs",
            "3000",
            "--batch",
            "10",
            "--validation",
            "0",
            "--members",
            "40",
            "--parallel",
            "no",
            "--save-dir",
            ens.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let first = ens.join("member-0.safetensors");
    let start = std::time::Instant::now();
    while !first.exists() {
        assert!(
            start.elapsed().as_secs() < 120,
            "no member saved after 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGINT);
    }
    let status = child.0.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("interrupted in epoch"), "{err}");
    assert!(err.contains("member 0 (seed 777) done"), "{err}");
    assert!(err.contains("finished, saved in"), "{err}");
    assert!(!ens.join("member-39.safetensors").exists(), "{err}");
    let (ok, out, err) = nnlab(&["eval", "--model", first.to_str().unwrap()]);
    assert!(ok && out.contains("accuracy"), "{out}{err}");
}
