use super::*;

#[test]
fn options_name_the_configurations_to_fail() {
    let o = options("quiet lb.iters=7 lb.ops=collapse lb.fail=collapse:C,unmap:A");
    assert_eq!((o.iters, o.ops.len()), (7, 1));
    assert_eq!(
        o.fail,
        vec![(Op::Collapse, Scenario::C), (Op::Unmap, Scenario::A)]
    );
    assert!(o.ignored.is_empty());
    assert!(options("lb.fail=").fail.is_empty());
    let o = options("lb.scen=C,D,A lb.fail=collapse:E,grow:A");
    assert_eq!(o.scenarios, [Scenario::C, Scenario::A]);
    assert_eq!(o.ignored, ["lb.scen=D", "lb.fail=collapse:E", "lb.fail=grow:A"]);
    assert_eq!(options("").ops, ["unmap", "collapse", "unshare"]);
    let o = options("lb.symbols=a_key,b");
    let text = "ffffffff81000000 T b\nffffffff82000000 D c [mod]\n";
    assert_eq!(symbols(text, &o.symbols), "a_key=no b=yes");
}

#[test]
fn only_transient_errnos_are_retried() {
    assert!(sys::is_transient(libc::EAGAIN) && sys::is_transient(libc::EBUSY));
    assert!(!sys::is_transient(libc::EINVAL) && !sys::is_transient(libc::ENOMEM));
}
