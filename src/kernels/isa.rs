//! Which instruction set the CPU kernels use: detected once per process, capped by `BITNET_ISA`
//! (`crate::env`), and passed to every op (ternary, f16, attention, exp, norm, the Q8_K
//! quantizer), each of which dispatches on it to its vector variant or its scalar twin.
//!
//! The levels are ordered: each one implies the features of those below it, so "at least
//! AVX-512" is `isa >= Isa::Avx512Vnni`.

use std::sync::OnceLock;

use crate::env;

/// An instruction-set level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX-512 F, BW, VL and VNNI.
    Avx512Vnni,
    /// AVX-512 VNNI plus AMX-INT8 tiles for the per-token prefill sums (`ternary::amx`).
    Amx,
}

/// The level the kernels use: the CPU's best (`hardware`), lowered by `BITNET_ISA` if set to
/// `scalar`, `avx2` or `avx512` (other values are ignored; it never raises the level).
pub fn best_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| capped(hardware(), env::var(env::ISA).as_deref()))
}

/// Whether `isa` can run here (whatever `BITNET_ISA` says): tests and benches compare every
/// available level against the scalar one.
pub fn isa_available(isa: Isa) -> bool {
    isa <= hardware()
}

/// Every level that can run here, lowest (`Scalar`) first.
pub fn available_isas() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Amx]
        .into_iter()
        .filter(|&i| isa_available(i))
        .collect()
}

/// `best` lowered to the level `forced` names, if it names one.
fn capped(best: Isa, forced: Option<&str>) -> Isa {
    let cap = match forced {
        Some("scalar") => Isa::Scalar,
        Some("avx2") => Isa::Avx2,
        Some("avx512") => Isa::Avx512Vnni,
        _ => return best,
    };
    best.min(cap)
}

/// The best level the CPU (and for AMX, the OS) offers, detected once.
fn hardware() -> Isa {
    static HW: OnceLock<Isa> = OnceLock::new();
    *HW.get_or_init(|| {
        let mut best = Isa::Scalar;
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                best = Isa::Avx2;
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
            {
                best = Isa::Avx512Vnni;
                if amx_available() {
                    best = Isa::Amx;
                }
            }
        }
        best
    })
}

/// Whether the CPU has AMX-INT8 and the kernel let this process use the tiles (and
/// `BITNET_NO_AMX` is not set). Linux hands out the tile registers only after
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; this asks once.
#[cfg(target_arch = "x86_64")]
pub fn amx_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if env::var_os(env::NO_AMX).is_some() {
            return false;
        }
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (tile, int8) = (leaf7.edx & (1 << 24) != 0, leaf7.edx & (1 << 25) != 0);
        tile && int8 && request_tiles()
    })
}

/// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0.
#[cfg(target_arch = "x86_64")]
fn request_tiles() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call that only changes this process's permission to use
        // the AMX state; rcx and r11 are clobbered by `syscall`.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(Isa::Scalar < Isa::Avx2);
        assert!(Isa::Avx2 < Isa::Avx512Vnni);
        assert!(Isa::Avx512Vnni < Isa::Amx);
    }

    #[test]
    fn forced_level_only_lowers() {
        let all = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Amx];
        for best in all {
            assert_eq!(capped(best, None), best);
            assert_eq!(capped(best, Some("amx")), best, "not a cap: ignored");
            assert_eq!(capped(best, Some("")), best);
            assert_eq!(capped(best, Some("scalar")), Isa::Scalar);
            assert_eq!(capped(best, Some("avx2")), best.min(Isa::Avx2));
            assert_eq!(capped(best, Some("avx512")), best.min(Isa::Avx512Vnni));
        }
        assert_eq!(capped(Isa::Amx, Some("avx512")), Isa::Avx512Vnni);
        assert_eq!(capped(Isa::Avx2, Some("avx512")), Isa::Avx2);
    }

    #[test]
    fn chosen_level_is_available() {
        assert!(isa_available(Isa::Scalar));
        assert!(isa_available(best_isa()));
        assert!(best_isa() <= hardware());
        let all = available_isas();
        assert_eq!(all.first(), Some(&Isa::Scalar));
        assert_eq!(all.last(), Some(&hardware()));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
