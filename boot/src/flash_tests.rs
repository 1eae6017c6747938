use super::*;

fn stick() -> DeviceInfo {
    DeviceInfo {
        path: "/dev/sdz".into(),
        is_block: true,
        whole_disk: true,
        removable: true,
        size: 16 << 30,
        model: "Acme Stick".into(),
        mounts: vec![],
        holds_root: false,
    }
}

#[test]
fn a_removable_unmounted_disk_is_accepted() {
    assert_eq!(check(&stick(), 8 << 20, false), Ok(()));
}

#[test]
fn every_refusal_case_refuses() {
    let img = 8 << 20;
    let cases: Vec<(DeviceInfo, bool, Result<(), Refusal>)> = vec![
        (
            DeviceInfo {
                is_block: false,
                ..stick()
            },
            true,
            Err(Refusal::NotBlockDevice),
        ),
        (
            DeviceInfo {
                whole_disk: false,
                ..stick()
            },
            true,
            Err(Refusal::Partition),
        ),
        (
            DeviceInfo {
                holds_root: true,
                mounts: vec!["/".into()],
                ..stick()
            },
            true,
            Err(Refusal::HoldsRoot),
        ),
        (
            DeviceInfo {
                mounts: vec!["/media/x".into()],
                ..stick()
            },
            true,
            Err(Refusal::Mounted(vec!["/media/x".into()])),
        ),
        (
            DeviceInfo {
                removable: false,
                ..stick()
            },
            false,
            Err(Refusal::NotRemovable),
        ),
        // --force accepts a fixed disk, and nothing else.
        (
            DeviceInfo {
                removable: false,
                ..stick()
            },
            true,
            Ok(()),
        ),
        (
            DeviceInfo {
                size: 1 << 20,
                ..stick()
            },
            true,
            Err(Refusal::TooSmall {
                device: 1 << 20,
                image: img,
            }),
        ),
    ];
    for (info, force, want) in cases {
        assert_eq!(check(&info, img, force), want, "{info:?} force={force}");
    }
}

#[test]
fn a_regular_file_is_described_as_not_a_block_device_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("disk.img");
    std::fs::write(&f, vec![7u8; 4096]).unwrap();
    let info = describe(&f).unwrap();
    assert!(!info.is_block);
    assert_eq!(check(&info, 10, true), Err(Refusal::NotBlockDevice));
    assert_eq!(std::fs::read(&f).unwrap(), vec![7u8; 4096], "nothing written");
}

#[test]
fn root_disk_is_refused_when_found() {
    // Whatever disk holds / on this machine, describing it must refuse it.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let Some(dev) = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .and_then(|l| l.split_whitespace().next())
    else {
        return;
    };
    if !dev.starts_with("/dev/") {
        return; // overlay or similar: no block device holds /
    }
    if let Ok(info) = describe(Path::new(dev)) {
        assert!(check(&info, 1, true).is_err(), "{info:?}");
    }
}

#[test]
fn a_loop_device_is_refused_as_non_removable_where_available() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("stick.img");
    std::fs::write(&f, vec![0u8; 8 << 20]).unwrap();
    let Ok(out) = std::process::Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&f)
        .output()
    else {
        return;
    };
    if !out.status.success() {
        return; // no loop devices here (not root, or no loop support)
    }
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let info = describe(Path::new(&dev));
    let _ = std::process::Command::new("losetup").args(["-d", &dev]).status();
    let info = info.unwrap();
    assert!(info.is_block && info.whole_disk, "{info:?}");
    assert_eq!(check(&info, 1 << 20, false), Err(Refusal::NotRemovable));
    assert_eq!(
        check(&info, 64 << 20, true),
        Err(Refusal::TooSmall {
            device: 8 << 20,
            image: 64 << 20
        })
    );
    assert_eq!(std::fs::read(&f).unwrap(), vec![0u8; 8 << 20], "nothing written");
}

#[test]
fn write_and_verify_round_trips_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let target = dir.path().join("target");
    let data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&img, &data).unwrap();
    std::fs::write(&target, vec![0u8; 4 << 20]).unwrap();
    let digest = write_and_verify(&img, &target).unwrap();
    assert_eq!(digest.len(), 64);
    assert_eq!(&std::fs::read(&target).unwrap()[..data.len()], &data[..]);
}
