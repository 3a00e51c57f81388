//! Link scripts: cortex-m-rt's `link.x` (which includes the `memory.x` embassy-stm32 writes for
//! the chip) and defmt's `defmt.x`.

fn main() {
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
