//! The coherence oracle over its matrix (see [`crate::coherence`]): every operation, in
//! scenarios A (the address space running on the other CPUs) and C (held lazily), each
//! a test of its own. `cargo run -- test coherence` runs them in one configuration;
//! `cargo test` runs them natively at BIOS `-smp 1, 2, 4, 7, 8`, `-smp 4 apic=xapic` and
//! UEFI `-smp 1, 4`, and with the paravirt backend at `-smp 2, 4, 8`
//! (`needs(handler_flush())`: the oracle requires lazy CPUs to leave an address space
//! whose tables were freed, which only a flush that runs a handler makes them do;
//! `up_to_cpus(16)`, for time: `-smp 64` reports them as ignored), and boots
//! `tlb.break=` runs that must fail. Each operation that frees or unshares tables runs
//! once in each table-free sync form (`broadcast`, `targeted`, `wait`: `oracle::check`).
//!
//! The release tests are about every backend (`needs(per_backend())`): lazy holders
//! leave a released address space by the release's own cross call whatever the flush
//! does, so they run in the native, pv and INVLPGB configurations.

use crate::ktests::oracle::{Huge, Op, Scenario, Tables, check};

macro_rules! coherence_tests {
    ($($name:ident: $op:expr, $scen:ident;)*) => {
        $(ktest::kernel_test!(needs(handler_flush().and(up_to_cpus(16))) fn $name() { check($op, Scenario::$scen) });)*
    };
}

ktest::kernel_test!(needs(per_backend().and(up_to_cpus(16))) fn release_a() {
    check(Op::Release, Scenario::A)
});
ktest::kernel_test!(needs(per_backend().and(up_to_cpus(16))) fn release_c() {
    check(Op::Release, Scenario::C)
});

const fn huge(size: Huge, tables: Tables) -> Op {
    Op::UnmapHuge { size, tables }
}

const fn unmap(pages: u64, tables: Tables) -> Op {
    Op::Unmap {
        pages,
        tables,
        batch: true,
    }
}

const fn unmap_nobatch(pages: u64) -> Op {
    Op::Unmap {
        pages,
        tables: Tables::Free,
        batch: false,
    }
}

coherence_tests! {
    unmap_1_free_a: unmap(1, Tables::Free), A;
    unmap_1_free_c: unmap(1, Tables::Free), C;
    unmap_33_free_a: unmap(33, Tables::Free), A;
    unmap_33_free_c: unmap(33, Tables::Free), C;
    unmap_34_free_a: unmap(34, Tables::Free), A;
    unmap_34_free_c: unmap(34, Tables::Free), C;
    unmap_512_free_a: unmap(512, Tables::Free), A;
    unmap_512_free_c: unmap(512, Tables::Free), C;
    unmap_1_keep_a: unmap(1, Tables::Keep), A;
    unmap_1_keep_c: unmap(1, Tables::Keep), C;
    unmap_33_keep_a: unmap(33, Tables::Keep), A;
    unmap_33_keep_c: unmap(33, Tables::Keep), C;
    unmap_34_keep_a: unmap(34, Tables::Keep), A;
    unmap_34_keep_c: unmap(34, Tables::Keep), C;
    unmap_512_keep_a: unmap(512, Tables::Keep), A;
    unmap_512_keep_c: unmap(512, Tables::Keep), C;
    unmap_nobatch_1_a: unmap_nobatch(1), A;
    unmap_nobatch_1_c: unmap_nobatch(1), C;
    unmap_nobatch_512_a: unmap_nobatch(512), A;
    unmap_nobatch_512_c: unmap_nobatch(512), C;
    collapse_a: Op::Collapse, A;
    collapse_c: Op::Collapse, C;
    unshare_a: Op::Unshare, A;
    unshare_c: Op::Unshare, C;
    teardown_a: Op::Teardown, A;
    teardown_c: Op::Teardown, C;
    // Huge leaves: no PTE table, only upper tables (or none) go.
    unmap_2m_free_a: huge(Huge::M2, Tables::Free), A;
    unmap_2m_free_c: huge(Huge::M2, Tables::Free), C;
    unmap_2m_free_pmd_a: huge(Huge::M2, Tables::FreeOne), A;
    unmap_2m_free_pmd_c: huge(Huge::M2, Tables::FreeOne), C;
    unmap_2m_keep_a: huge(Huge::M2, Tables::Keep), A;
    unmap_2m_keep_c: huge(Huge::M2, Tables::Keep), C;
    unmap_1g_free_a: huge(Huge::G1, Tables::Free), A;
    unmap_1g_free_c: huge(Huge::G1, Tables::Free), C;
    unmap_1g_keep_a: huge(Huge::G1, Tables::Keep), A;
    unmap_1g_keep_c: huge(Huge::G1, Tables::Keep), C;
}
