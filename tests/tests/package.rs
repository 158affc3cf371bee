//! The `lbd` Debian package (`cargo xtask package`; `cargo xtask test`
//! builds it and passes its path in `LB_DEB`): unpacked into a scratch root
//! with `dpkg-deb`, its files, metadata, conffiles, manual pages (rendered
//! with `man -l`), bash completion (run), systemd unit (`systemd-analyze
//! verify`: PID 1 here is not systemd, and a systemd started in a namespace
//! did not come up, so the unit is verified, not run) and maintainer
//! scripts (prerm run against a real lbd in the lab: `remove` tears the
//! data path down, `upgrade` keeps it).

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use lb_lab::{
    Lab, VIP_V4, command_in_net,
    daemon::{LabDaemon, LabService},
    exec_ok, http_get, wait_for,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The package under test.
fn deb() -> PathBuf {
    let deb = std::env::var_os("LB_DEB").map_or_else(
        || {
            panic!(
                "LB_DEB is not set: run this test through `cargo xtask test`, or build the \
                 package with `cargo xtask package` and set LB_DEB to the path it prints"
            )
        },
        PathBuf::from,
    );
    assert!(deb.is_file(), "LB_DEB={}: no such file", deb.display());
    deb
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// A scratch directory, removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("lbd-{what}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `dpkg-deb -x` (the files) and `-e` (the control files) into `root`.
fn unpack(deb: &Path, root: &Path) {
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(root.join("DEBIAN")));
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_package_holds_what_a_debian_user_expects() {
    let deb = deb();
    let field = |name: &str| stdout(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "lbd");
    assert_eq!(field("Section").trim(), "net");
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    let description = field("Description");
    for words in [
        "direct routing",
        "XDP",
        "CAP_BPF",
        "systemctl enable --now lbd",
    ] {
        assert!(description.contains(words), "{words:?} in {description}");
    }

    let scratch = Scratch::new("package");
    let root = &scratch.0;
    unpack(&deb, root);
    let conffiles = fs::read_to_string(root.join("DEBIAN/conffiles")).unwrap();
    assert_eq!(
        conffiles.trim(),
        "/etc/lbd/lb.toml",
        "upgrades keep its edits"
    );

    let ws = workspace();
    for (path, want) in [
        ("usr/sbin/lbd", 0o755),
        ("usr/sbin/lbctl", 0o755),
        ("etc/lbd/lb.toml", 0o600),
        ("usr/lib/systemd/system/lbd.service", 0o644),
        ("usr/share/man/man8/lbd.8.gz", 0o644),
        ("usr/share/man/man8/lbctl.8.gz", 0o644),
        ("usr/share/man/man5/lb.toml.5.gz", 0o644),
        ("usr/share/bash-completion/completions/lbd", 0o644),
        ("usr/share/bash-completion/completions/lbctl", 0o644),
        ("usr/share/zsh/vendor-completions/_lbd", 0o644),
        ("usr/share/zsh/vendor-completions/_lbctl", 0o644),
        ("usr/share/fish/vendor_completions.d/lbd.fish", 0o644),
        ("usr/share/fish/vendor_completions.d/lbctl.fish", 0o644),
        ("usr/share/doc/lbd/copyright", 0o644),
        ("usr/share/doc/lbd/LICENSE-MIT", 0o644),
        ("usr/share/doc/lbd/LICENSE-APACHE", 0o644),
        ("usr/share/doc/lbd/examples/bird/director.conf", 0o644),
        ("usr/share/doc/lbd/examples/bird/router.conf", 0o644),
    ] {
        assert_eq!(mode(&root.join(path)), want, "mode of /{path}");
    }
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        read(&root.join("etc/lbd/lb.toml")),
        read(&ws.join("config/lb.toml")),
        "/etc/lbd/lb.toml is the annotated config"
    );
    assert_eq!(
        read(&root.join("usr/lib/systemd/system/lbd.service")),
        read(&ws.join("packaging/lbd.service"))
    );

    // --version: the version and the git revision it was built from.
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&ws)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    for bin in ["lbd", "lbctl"] {
        let version = stdout(Command::new(root.join("usr/sbin").join(bin)).arg("--version"));
        println!("{}", version.trim());
        assert!(
            version.starts_with(&format!("{bin} {} (git ", env!("CARGO_PKG_VERSION"))),
            "{version}"
        );
        if let Some(rev) = &git {
            assert!(version.contains(rev.as_str()), "{version} names {rev}");
        }
    }

    manual_pages_render(root);
    bash_completes(root);
    unit_verifies(root);
    scripts_parse(root);
}

/// `man -l` renders each page, with groff's warnings on (any is a failure).
fn manual_pages_render(root: &Path) {
    for (page, name, must) in [
        ("man8/lbd.8.gz", "lbd", "teardown"),
        ("man8/lbctl.8.gz", "lbctl", "lbctl real drain"),
        ("man5/lb.toml.5.gz", "lb.toml", "conntrack_size"),
    ] {
        let out = run(Command::new("man")
            .arg("-l")
            .arg(root.join("usr/share/man").join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("MANROFFOPT", "-ww"));
        let text = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{page}: groff warns: {stderr}");
        assert!(text.contains("NAME"), "{page}:\n{text}");
        assert!(
            text.contains(name) && text.contains(must),
            "{page}:\n{text}"
        );
        println!("{page}: {} lines", text.lines().count());
    }
}

/// The bash completion loads (with bash-completion's helpers, as on a
/// Debian system) and completes a subcommand.
fn bash_completes(root: &Path) {
    let script = format!(
        "set -e\nsource /usr/share/bash-completion/bash_completion\nsource {}\n\
         complete -p lbctl\nCOMP_WORDS=(lbctl real dr); COMP_CWORD=2\n\
         COMP_LINE='lbctl real dr'; COMP_POINT=${{#COMP_LINE}}\n_lbctl lbctl dr real\n\
         printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"\nsource {}\ncomplete -p lbd\n",
        root.join("usr/share/bash-completion/completions/lbctl")
            .display(),
        root.join("usr/share/bash-completion/completions/lbd")
            .display(),
    );
    let text = stdout(Command::new("bash").arg("-c").arg(script));
    assert!(text.contains("-F _lbctl lbctl"), "{text}");
    assert!(
        text.contains("reply:drain"),
        "lbctl real dr<TAB> gives drain: {text}"
    );
    assert!(text.contains("-F _lbd lbd"), "{text}");
    let fish =
        fs::read_to_string(root.join("usr/share/fish/vendor_completions.d/lbctl.fish")).unwrap();
    assert!(fish.contains("complete -c lbctl"), "{fish}");
    let zsh = fs::read_to_string(root.join("usr/share/zsh/vendor-completions/_lbctl")).unwrap();
    assert!(zsh.starts_with("#compdef lbctl"), "{zsh}");
}

/// `systemd-analyze verify` of the unit, its commands pointed at the
/// scratch root (they must exist and be executable) and its
/// `Documentation=` pages looked up there; and a broken copy is refused
/// (so the check is a real one).
fn unit_verifies(root: &Path) {
    let unit = fs::read_to_string(root.join("usr/lib/systemd/system/lbd.service")).unwrap();
    let sbin = root.join("usr/sbin");
    let dir = root.join("verify");
    fs::create_dir_all(dir.join("bad")).unwrap();
    let moved = unit.replace("/usr/sbin/", &format!("{}/", sbin.display()));
    fs::write(dir.join("lbd.service"), &moved).unwrap();
    fs::write(
        dir.join("bad/lbd.service"),
        moved.replace("Type=notify", "Type=notified"),
    )
    .unwrap();
    let verify = |unit: &Path| {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .env("MANPATH", root.join("usr/share/man"))
            .output()
            .unwrap()
    };
    let out = verify(&dir.join("lbd.service"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    let bad = verify(&dir.join("bad/lbd.service"));
    assert!(
        !bad.status.success() || !bad.stderr.is_empty(),
        "a unit with a bad Type= is refused"
    );
    for line in [
        "Type=notify",
        "ExecReload=/usr/sbin/lbctl reload",
        "Restart=on-failure",
        "RuntimeDirectory=lbd",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit");
    }
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
}

/// The maintainer scripts parse, and prerm's teardown runs after the
/// generated stop of the service, on removal only.
fn scripts_parse(root: &Path) {
    for script in ["prerm", "postinst", "postrm"] {
        let path = root.join("DEBIAN").join(script);
        assert_eq!(mode(&path), 0o755, "{script}");
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let prerm = fs::read_to_string(root.join("DEBIAN/prerm")).unwrap();
    let stop = prerm
        .find("deb-systemd-invoke stop lbd.service")
        .expect("prerm stops lbd");
    let teardown = prerm.find("teardown ||").expect("prerm runs lbd teardown");
    assert!(stop < teardown, "stop first, then teardown:\n{prerm}");
    let postinst = fs::read_to_string(root.join("DEBIAN/postinst")).unwrap();
    assert!(
        postinst.contains("try-restart lbd.service"),
        "an upgrade restarts a running lbd (hitless):\n{postinst}"
    );
}

/// prerm without cargo-deb's systemd part (which would act on this
/// machine's systemd, if it ran one).
fn prerm_without_systemd(root: &Path) -> PathBuf {
    let prerm = fs::read_to_string(root.join("DEBIAN/prerm")).unwrap();
    let start = prerm.find("# Automatically added by cargo-deb").unwrap();
    let end = prerm.find("# End automatically added section").unwrap();
    let stripped = format!("{}{}", &prerm[..start], &prerm[end..]);
    let path = root.join("prerm-test");
    fs::write(&path, stripped).unwrap();
    path
}

#[test]
fn removing_the_package_tears_the_data_path_down_and_upgrading_does_not() {
    let deb = deb();
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .expect("build the lab");
    let root = lab.dir().join("root");
    unpack(&deb, &root);
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let text = LabDaemon::config_text(&lab, 0, &[service]);
    // The package's lbd, with a config for this lab in the package's place.
    fs::write(root.join("etc/lbd/lb.toml"), &text).unwrap();
    let mut lbd = LabDaemon::prepare(&mut lab, 0, &text).unwrap();
    lbd.set_bin_dir(root.join("usr/sbin"));
    lbd.spawn().expect("the package's lbd starts");
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    let answered = || {
        wait_for(Duration::from_secs(20), "a request through the VIP", || {
            http_get(lab.client_ns(0), vip, "/", Duration::from_secs(2))
        })
    };
    answered().unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let link = exec_ok(lbd.namespace(), &["ip", "link", "show", "dev", "eth0"]).unwrap();
    assert!(link.contains("xdp"), "lbd attached its program: {link}");
    // `systemctl stop`: SIGTERM. Forwarding goes on.
    lbd.stop().unwrap();
    answered().expect("forwarding continues with lbd stopped");

    let prerm = prerm_without_systemd(&root);
    let prerm_run = |action: &[&str]| {
        let mut args = vec!["sh".to_owned(), prerm.display().to_string()];
        args.extend(action.iter().map(|a| (*a).to_owned()));
        let out = command_in_net(lbd.namespace(), &args)
            .env("DPKG_ROOT", &root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prerm {action:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    prerm_run(&["upgrade", "0.1.0-2"]);
    assert!(lbd.pin_path().exists(), "an upgrade keeps the data path");
    answered().expect("forwarding continues across prerm upgrade");
    let log = prerm_run(&["remove"]);
    println!("prerm remove: {}", log.trim());
    assert!(
        !lbd.pin_path().exists(),
        "prerm remove ran lbd teardown: {} is gone",
        lbd.pin_path().display()
    );
    let link = exec_ok(lbd.namespace(), &["ip", "link", "show", "dev", "eth0"]).unwrap();
    assert!(!link.contains("xdp"), "the XDP program is detached: {link}");
    let addresses = exec_ok(lbd.namespace(), &["ip", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(
        !addresses.contains(&VIP_V4.to_string()),
        "the VIP is released: {addresses}"
    );
}
