//! The binary: help, version, config printing, and bad input giving a clear error and
//! a non-zero exit.

mod common;

use std::process::Command;

fn nnlab(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (ok, out, _) = nnlab(&["--version"]);
    assert!(ok && out.contains(env!("CARGO_PKG_VERSION")));
    for sub in [
        vec!["lab"],
        vec!["train"],
        vec!["data"],
        vec!["data", "fetch"],
        vec!["data", "info"],
        vec!["data", "show"],
    ] {
        let mut a = sub.clone();
        a.push("--help");
        let (ok, out, _) = nnlab(&a);
        assert!(ok && out.contains("Usage"), "{sub:?}: {out}");
    }
}

#[test]
fn print_config_round_trips() {
    let (ok, out, err) = nnlab(&[
        "train",
        "--preset",
        "dropout",
        "--epochs",
        "3",
        "--print-config",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("keep_prob = 0.7") && out.contains("epochs = 3"),
        "{out}"
    );
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("run.toml");
    std::fs::write(&f, &out).unwrap();
    let (ok, again, err) = nnlab(&["train", "--config", f.to_str().unwrap(), "--print-config"]);
    assert!(ok, "{err}");
    assert_eq!(again, out);
    // flags win over the file
    let (_, flags, _) = nnlab(&[
        "train",
        "--hidden",
        "32,16",
        "--activation",
        "elu:0.5",
        "--init",
        "he-normal",
        "--dropout",
        "0.3",
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--schedule",
        "step:5:0.5",
        "--print-config",
    ]);
    for want in [
        "hidden = [\n    32,\n    16,\n]",
        "activation = \"elu:0.5\"",
        "init = \"he-normal\"",
        "keep_prob = 0.7",
        "kind = \"momentum\"",
        "lr = 0.05",
        "schedule = \"step:5:0.5\"",
    ] {
        assert!(flags.contains(want), "missing {want:?} in\n{flags}");
    }
}

#[test]
fn invalid_settings_name_the_field() {
    for (args, want) in [
        (vec!["--keep-prob", "1.5"], "model.keep_prob"),
        (vec!["--batch", "0"], "batch"),
        (vec!["--lr", "-0.1"], "optimizer.lr"),
        (vec!["--activation", "swish"], "swish"),
        (vec!["--init", "gaussian"], "gaussian"),
        (vec!["--optimizer", "lbfgs"], "lbfgs"),
        (vec!["--preset", "huge"], "huge"),
        (vec!["--dropout", "1.0"], "--dropout"),
        (vec!["--config", "/no/such/file.toml"], "/no/such/file.toml"),
    ] {
        let mut a = vec!["train", "--print-config"];
        a.extend(args.iter());
        let (ok, _, err) = nnlab(&a);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn data_show_on_a_folder_and_bad_index() {
    let d = tempfile::tempdir().unwrap();
    common::write_folder(d.path(), 5, 3, 6, 4, 3);
    let p = d.path().to_str().unwrap();
    let (ok, out, err) = nnlab(&["data", "show", p, "--index", "1", "--split", "test"]);
    assert!(ok, "{err}");
    assert!(out.contains("label 1") && out.contains("+----+"), "{out}");
    let (ok, _, err) = nnlab(&["data", "show", p, "--index", "99"]);
    assert!(!ok && err.contains("--index 99 is out of range"), "{err}");
    let (ok, _, err) = nnlab(&["data", "info", "nosuchset"]);
    assert!(!ok && err.contains("unknown dataset 'nosuchset'"), "{err}");
    let (ok, out, err) = nnlab(&["data", "info", p]);
    assert!(
        ok && out.contains("5 images") && out.contains("no known checksum"),
        "{out}{err}"
    );
}

#[test]
fn train_on_a_small_folder_dataset() {
    let d = tempfile::tempdir().unwrap();
    common::write_folder(d.path(), 60, 20, 4, 4, 3);
    let p = d.path().to_str().unwrap();
    let (ok, out, err) = nnlab(&[
        "train",
        "--dataset",
        p,
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch",
        "10",
        "--validation",
        "10",
        "--json",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["event"], "epoch");
    assert_eq!(lines[2]["event"], "result");
    assert!(lines[2]["test_accuracy"].as_f64().unwrap() >= 0.0);
}
