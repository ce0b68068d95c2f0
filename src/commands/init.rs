//! `streamstack init [--example weather-lab|classroom|direct] [--force] [PATH]`

use super::{Failure, Outcome};
use streamstack::cli::{Example, InitArgs};

const WEATHER_LAB: &str = include_str!("../../stacks/weather-lab.yaml");
const CLASSROOM: &str = include_str!("../../stacks/classroom.yaml");
const DIRECT: &str = include_str!("../../stacks/direct.yaml");

pub fn run(a: &InitArgs) -> Outcome {
    let (force, path) = (a.force, &a.path);
    let text = match a.example {
        Example::WeatherLab => WEATHER_LAB,
        Example::Classroom => CLASSROOM,
        Example::Direct => DIRECT,
    };
    // The examples point editors at the schema beside them; a copy points at the command.
    let text = text.replace(
        "# yaml-language-server: $schema=../schema/streamstack.schema.json\n",
        "# Editors: `streamstack schema > streamstack.schema.json` and point yaml-language-server at it.\n",
    );
    if path.exists() && !force {
        return Err(Failure::Message(format!(
            "{} exists; pass --force to overwrite it, or give another PATH",
            path.display()
        )));
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::Message(format!("cannot write {}: {e}", path.display())))?;
    let p = path.display();
    println!("Wrote {p}. Next:");
    println!("  streamstack validate {p}          # offline: every error with its line");
    println!("  streamstack plan {p}              # what apply would do (needs AWS credentials)");
    println!("  streamstack apply {p}             # asks for 'yes'");
    println!("  streamstack check {p}             # does data reach S3?");
    println!("  streamstack destroy {p}           # everything, the bucket included");
    println!(
        "On a local emulator, add --endpoint-url http://127.0.0.1:PORT to each (see scripts/demo)."
    );
    Ok(0)
}
