//! The binary: help, version, config printing, and bad input giving a clear error and
//! a non-zero exit.

mod common;

use std::process::Command;

use common::nnlab;

#[test]
fn help_and_version() {
    let (ok, out, _) = nnlab(&["--version"]);
    assert!(ok && out.contains(env!("CARGO_PKG_VERSION")));
    for sub in [
        vec!["lab"],
        vec!["train"],
        vec!["eval"],
        vec!["predict"],
        vec!["ensemble"],
        vec!["bench"],
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
    // --elastic turns the augmentation on with its defaults and the field's strength
    let (ok, out, err) = nnlab(&["train", "--elastic", "34", "--print-config"]);
    assert!(ok, "{err}");
    for want in [
        "[augment]",
        "shift = 2",
        "rotate = 10.0",
        "elastic = 34.0",
        "sigma = 4.0",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
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
        (
            vec!["--precision", "f16"],
            "unknown precision `f16` (f32, bf16)",
        ),
        (
            vec!["--schedule", "cosine:1"],
            "floor must be in [0, lr = 0.001]",
        ),
        (vec!["--elastic", "500"], "augment.elastic = 500"),
        (vec!["--elastic", "NaN"], "augment.elastic = NaN"),
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

#[test]
fn save_checked_before_training_and_resume_with_another_config_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 60, 20, 4, 4, 3);
    let ds = data.to_str().unwrap();
    let missing = d.path().join("no/such/dir/m.safetensors");
    let t = std::time::Instant::now();
    let (ok, _, err) = nnlab(&[
        "train",
        "--dataset",
        ds,
        "--epochs",
        "50",
        "--save",
        missing.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    assert!(t.elapsed().as_secs() < 10, "refused before training");
    let ck = d.path().join("ck");
    let base = [
        "train",
        "--dataset",
        ds,
        "--hidden",
        "8",
        "--batch",
        "10",
        "--validation",
        "10",
        "--quiet",
        "--epochs",
        "1",
    ];
    let mut a = base.to_vec();
    a.extend(["--checkpoint-dir", ck.to_str().unwrap()]);
    let (ok, _, err) = nnlab(&a);
    assert!(ok, "{err}");
    let mut b = base.to_vec();
    b.extend(["--resume", ck.to_str().unwrap(), "--lr", "0.5"]);
    let (ok, _, err) = nnlab(&b);
    assert!(
        !ok && err.contains("different config") && err.contains("optimizer.lr"),
        "{err}"
    );
}

/// Ctrl-C, SIGTERM and SIGHUP during training: each stops after the batch, keeps the
/// last epoch's checkpoint, exits non-zero and says how to resume.
#[test]
fn a_signal_stops_and_says_how_to_resume() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let d = tempfile::tempdir().unwrap();
        let ck = d.path().join("ck");
        let child = Command::new(env!("CARGO_BIN_EXE_nnlab"))
            .args([
                "train",
                "--preset",
                "xavier",
                "--epochs",
                "30",
                "--quiet",
                "--checkpoint-dir",
                ck.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !ck.join("checkpoint.safetensors").exists() {
            assert!(start.elapsed().as_secs() < 120, "no checkpoint after 120 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "signal {signal}: {err}");
        assert!(
            err.contains("interrupted") && err.contains("--resume"),
            "signal {signal}: {err}"
        );
        assert!(
            nnlab::train::checkpoint::load_checkpoint(
                &ck,
                &{
                    let mut c = nnlab::config::TrainConfig::preset("xavier").unwrap();
                    c.epochs = 30;
                    c
                },
                nnlab::Runtime::default()
            )
            .is_ok()
        );
    }
}

/// Ctrl-C during a DBN's RBM pre-training stops after the batch, names the RBM epoch and
/// layer, and says that there is nothing to resume from (no epoch of training had
/// finished, and pre-training keeps no checkpoint), leaving no checkpoint behind.
#[cfg(unix)]
#[test]
fn a_signal_in_pre_training_says_there_is_nothing_to_resume() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 60, 20, 4, 4, 3);
    let ck = d.path().join("ck");
    // stdout and stderr to files: pipes nobody reads could fill and stall the run
    let (out_log, err_log) = (d.path().join("out.txt"), d.path().join("err.txt"));
    let child = Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args([
            "train",
            "--dataset",
            data.to_str().unwrap(),
            "--hidden",
            "8",
            "--init",
            "rbm",
            "--pretrain-epochs",
            "1000000",
            "--batch",
            "10",
            "--validation",
            "0",
            "--epochs",
            "1",
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(&out_log).unwrap())
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let mut child = common::Served(child);
    let start = std::time::Instant::now();
    let printed =
        || std::fs::read_to_string(&out_log).unwrap() + &std::fs::read_to_string(&err_log).unwrap();
    while !printed().contains("RBM 1 pre-training epoch") {
        assert!(start.elapsed().as_secs() < 120, "no RBM epoch after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGINT);
    }
    let status = child.0.wait().unwrap();
    let err = std::fs::read_to_string(&err_log).unwrap();
    assert!(!status.success(), "{err}");
    for want in [
        "interrupted in RBM epoch",
        "(pre-training layer 1 of 1)",
        "no training epoch had finished (pre-training keeps no checkpoint)",
        "nothing to resume from",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    assert!(!ck.join("checkpoint.safetensors").exists());
}

/// Bad inputs that used to panic now end with a clear error: a dataset folder with no
/// test images, and residual blocks or branches with no layers.
#[test]
fn empty_parts_are_refused_with_a_message() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("no-test");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 20, 0, 4, 4, 3);
    let (ok, _, err) = nnlab(&[
        "train",
        "--dataset",
        data.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(!ok && err.contains("no test examples"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for (layers, want) in [
        (
            "[{ type = \"residual\", layers = [] }]",
            "model.layers[0].layers",
        ),
        (
            "[{ type = \"branch\", merge = \"concat\", branches = [[{ type = \"dense\", units = 4 }], []] }]",
            "model.layers[0].branches[1]",
        ),
    ] {
        let cfg = d.path().join("net.toml");
        std::fs::write(&cfg, format!("[model]\nlayers = {layers}\n")).unwrap();
        let (ok, _, err) = nnlab(&["train", "--config", cfg.to_str().unwrap(), "--print-config"]);
        assert!(
            !ok && err.contains(want) && err.contains("at least one"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A full disk on stdout (`/dev/full`) ends each command with a one-line error and a
/// non-zero status, not a panic.
#[test]
fn a_failing_stdout_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let m = common::tiny_model(d.path(), 4, 4);
    let data = d.path().join("data4x4");
    let (m, data) = (m.to_str().unwrap(), data.to_str().unwrap());
    let runs: [&[&str]; 4] = [
        &["eval", "--model", m],
        &["predict", "--model", m, "--index", "1"],
        &["data", "info", data],
        &[
            "train",
            "--dataset",
            data,
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--validation",
            "5",
        ],
    ];
    for args in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_nnlab"))
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("cannot write the output"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Command-line conventions: a missing file's error gives the OS message once; the
/// ensemble's help lists no flag it would reject; `--batch-size` is `--batch`; a lab
/// run of other than 15 epochs says so beside the lecture's figures.
#[test]
fn conventions() {
    let (ok, _, err) = nnlab(&["eval", "--model", "/no/such/model.safetensors"]);
    assert!(!ok && err.matches("No such file").count() == 1, "{err}");
    let (ok, out, _) = nnlab(&["ensemble", "--help"]);
    assert!(ok);
    for rejected in ["--save ", "--checkpoint-dir", "--resume"] {
        assert!(!out.contains(rejected), "ensemble --help lists {rejected}");
    }
    let (ok, out, err) = nnlab(&[
        "train",
        "--preset",
        "xavier",
        "--batch-size",
        "50",
        "--print-config",
    ]);
    assert!(ok && out.contains("batch = 50"), "{out}{err}");
}

/// Sizes are checked before anything is allocated: absurd widths, maxout pieces and
/// ensemble sizes are refused naming what they would take and what the machine has;
/// a device or a FIFO given as a file is refused without reading it.
#[test]
fn absurd_sizes_and_special_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 20, 5, 4, 4, 3);
    let data = data.to_str().unwrap();
    let runs: [&[&str]; 4] = [
        &["train", "--hidden", "18446744073709551615"],
        &["train", "--hidden", "1000000000"],
        &[
            "train",
            "--activation",
            "maxout:1000000",
            "--hidden",
            "1000",
        ],
        &["ensemble", "--members", "1000000000", "--hidden", "1000"],
    ];
    for args in runs {
        let mut args = args.to_vec();
        args.extend(["--dataset", data, "--validation", "5"]);
        let (ok, _, err) = nnlab(&args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("would take") && err.contains("available"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (ok, _, err) = nnlab(&["eval", "--model", "/dev/zero"]);
    assert!(!ok && err.contains("not a regular file"), "{err}");
    // a FIFO in place of a data file: refused at once, not waited on
    let fifo_dir = d.path().join("fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    common::write_folder(&fifo_dir, 20, 5, 4, 4, 3);
    let labels = fifo_dir.join("t10k-labels-idx1-ubyte");
    std::fs::remove_file(&labels).unwrap();
    let c = std::ffi::CString::new(labels.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (ok, _, err) = nnlab(&["data", "info", fifo_dir.to_str().unwrap()]);
    assert!(!ok && err.contains("FIFO"), "{err}");
}

/// A small PNG that declares 20000 x 20000 pixels is refused from its header, before
/// any pixel is decoded.
#[test]
fn an_image_bomb_is_refused_before_decoding() {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    }
    let mut ihdr = 20000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &common::gz(&[0; 100])[10..]));
    png.extend(chunk(b"IEND", b""));
    let err = nnlab::io::image_input::digit_from_bytes(&png, nnlab::io::image_input::Invert::Auto)
        .unwrap_err();
    assert!(err.contains("too large") && err.contains("8192"), "{err}");
    let d = tempfile::tempdir().unwrap();
    let m = common::tiny_model(d.path(), 28, 28);
    let p = d.path().join("bomb.png");
    std::fs::write(&p, &png).unwrap();
    let (ok, _, err) = nnlab(&[
        "predict",
        "--model",
        m.to_str().unwrap(),
        "--image",
        p.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("too large"), "{err}");
}

/// Writes that cannot destroy: --save refuses a folder, a device, a symlink (naming
/// its target) and someone else's file unless --force, and replaces nnlab's own
/// model; a checkpoint folder in use by a live run is refused naming its process,
/// while a dead run's lock and temp files are cleared.
#[test]
fn saves_and_checkpoints_do_not_destroy() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_folder(&data, 30, 5, 4, 4, 3);
    let data = data.to_str().unwrap().to_string();
    let train = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--dataset",
            &data,
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--validation",
            "5",
            "--quiet",
        ];
        a.extend_from_slice(extra);
        nnlab(&a)
    };
    let notes = d.path().join("notes.txt");
    std::fs::write(&notes, "my notes").unwrap();
    let (ok, _, err) = train(&["--save", notes.to_str().unwrap()]);
    assert!(!ok && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes");
    let link = d.path().join("link.safetensors");
    std::os::unix::fs::symlink(&notes, &link).unwrap();
    let (ok, _, err) = train(&["--save", link.to_str().unwrap()]);
    assert!(
        !ok && err.contains("symlink to") && err.contains("notes.txt"),
        "{err}"
    );
    let (ok, _, err) = train(&["--save", "/dev/null"]);
    assert!(!ok && err.contains("device"), "{err}");
    let null = std::fs::metadata("/dev/null").unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&null),
        "still a device"
    );
    let (ok, _, err) = train(&["--save", d.path().to_str().unwrap()]);
    assert!(!ok && err.contains("folder"), "{err}");
    // nnlab's own model is replaced; someone else's file with --force
    let model = d.path().join("m.safetensors");
    for _ in 0..2 {
        let (ok, _, err) = train(&["--save", model.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let (ok, _, err) = train(&["--save", notes.to_str().unwrap(), "--force"]);
    assert!(ok, "{err}");
    // a live run's lock (this test process) refuses; a dead run's is taken over
    let ck = d.path().join("ck");
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::write(ck.join(".lock"), std::process::id().to_string()).unwrap();
    let (ok, _, err) = train(&["--checkpoint-dir", ck.to_str().unwrap()]);
    let me = format!("process {}", std::process::id());
    assert!(!ok && err.contains(&me), "{err}");
    std::fs::write(ck.join(".lock"), "999999999").unwrap();
    let stale = ck.join(".checkpoint.safetensors.tmp-999999999-0");
    std::fs::write(&stale, "half a file").unwrap();
    let (ok, _, err) = train(&["--checkpoint-dir", ck.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(!stale.exists(), "the dead run's temp file is gone");
    assert!(
        !ck.join(".lock").exists(),
        "the lock is released at the end"
    );
    assert!(ck.join("checkpoint.safetensors").exists());
}

/// `train --help` states each setting's default, and what it states is what a run
/// without a preset uses (`TrainConfig::default()`, which `--print-config` prints).
#[test]
fn train_help_states_the_true_defaults() {
    let (ok, help, err) = nnlab(&["train", "--help"]);
    assert!(ok, "{err}");
    let cfg = nnlab::config::TrainConfig::default();
    let o = &cfg.optimizer;
    let m = &cfg.model;
    let hidden = m
        .hidden
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let want: Vec<(&str, String)> = vec![
        ("--dataset", cfg.dataset.clone()),
        ("--hidden", hidden),
        ("--activation", m.activation.to_string()),
        ("--init", m.init.to_string()),
        ("--bias-init", m.bias_init.to_string()),
        ("--keep-prob", m.keep_prob.to_string()),
        ("--optimizer", format!("{:?}", o.kind).to_lowercase()),
        ("--lr", o.lr.to_string()),
        ("--momentum", o.momentum.to_string()),
        ("--l2", o.l2.to_string()),
        ("--weight-decay", o.weight_decay.to_string()),
        ("--schedule", o.schedule.to_string()),
        ("--epochs", cfg.epochs.to_string()),
        ("--batch", cfg.batch.to_string()),
        ("--seed", cfg.seed.to_string()),
        ("--validation", cfg.validation.to_string()),
    ];
    for (flag, value) in want {
        // the flag's line, then its help text up to the next flag
        let lines: Vec<&str> = help.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{flag} ")))
            .unwrap_or_else(|| panic!("{flag} missing from --help"));
        let block = lines[at + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with('-'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let stated = block
            .split("[default: ")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .unwrap_or_else(|| panic!("{flag} states no default: {block}"));
        let stated = if flag == "--hidden" {
            stated
        } else {
            stated.split([',', ';']).next().unwrap().trim()
        };
        let same = stated == value
            || matches!((stated.parse::<f64>(), value.parse::<f64>()), (Ok(a), Ok(b)) if a == b);
        assert!(same, "{flag}: help says {stated}, the default is {value}");
    }
}
