//! `streamstack validate SPEC...`

use streamstack::diagnostics::Diagnostics;
use streamstack::spec;

use super::{load_options, print_diagnostics, stderr_color, Outcome};
use crate::cli::Global;

pub fn run(g: &Global, specs: &[std::path::PathBuf]) -> Outcome {
    let opts = load_options(g);
    let color = stderr_color(g);
    let mut failed = 0;
    for path in specs {
        match spec::load_file(path, &opts) {
            Ok(v) => {
                print_diagnostics(&v.warnings, color);
                println!(
                    "{}: ok: stack {}, {} resources",
                    path.display(),
                    v.spec.stack,
                    v.model.resources.len()
                );
            }
            Err(d) => {
                print_diagnostics(&d, color);
                failed += 1;
                let n = d.errors().count();
                eprintln!(
                    "{}: {n} error{}",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
        }
    }
    if failed > 0 {
        // Already printed; report only the exit status.
        return Err(super::Failure::Spec(Diagnostics::default()));
    }
    Ok(0)
}
