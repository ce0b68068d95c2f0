//! `streamstack init --from-live --region REGION [--delivery NAME]... [--instance ID]...
//! [--stack NAME] [PATH]` and `streamstack adopt SPEC [--auto-approve] [--allow-replace] [--json]`

use streamstack::adopt::{from_live, takeover};
use streamstack::cli::{AdoptArgs, Global, InitArgs};
use streamstack::kinds::REGISTRY;
use streamstack::ops;

use super::{
    approval_possible, confirm, event_printer, open_options, runtime, stdout_style, Failure,
    Outcome,
};

pub fn init_from_live(g: &Global, a: &InitArgs) -> Outcome {
    let path = &a.path;
    if path.exists() && !a.force {
        return Err(Failure::Message(format!(
            "{} exists; pass --force to overwrite it, or give another PATH",
            path.display()
        )));
    }
    let req = from_live::Request {
        stack: a.stack.clone(),
        deliveries: a.deliveries.clone(),
        instances: a.instances.clone(),
    };
    let opts = open_options(g, streamstack::events::Events::none());
    let text = runtime()?.block_on(async {
        let clients = streamstack::aws::Clients::new(&opts.aws).await?;
        let live = from_live::read(&clients, &req).await?;
        Ok::<_, Failure>((from_live::write_spec(&live), live.region))
    })?;
    let (text, region) = text;
    std::fs::write(path, &text)
        .map_err(|e| Failure::Message(format!("cannot write {}: {e}", path.display())))?;
    // What it wrote must load: a spec that does not is reported at once, with its lines.
    from_live::check(&path.display().to_string(), &text, &region)?;
    let p = path.display();
    println!("Wrote {p} from what is live. Next:");
    println!("  streamstack validate {p}     # offline");
    println!("  streamstack adopt {p}        # tag those resources as the stack's (asks first)");
    println!("  streamstack plan {p}         # what apply still changes (the ASSUMPTIONS at the end of the file)");
    Ok(0)
}

pub fn run(g: &Global, a: &AdoptArgs) -> Outcome {
    approval_possible(a.auto_approve)?;
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let opts = open_options(g, event_printer(style, a.json));
        let s = ops::open(&a.spec, &opts).await?;
        let live = s.live().await?;
        let (desired, _) = s.desired(&live, None);
        let (plan, marked) = takeover::decide(&REGISTRY, &desired, &live)?;
        if a.json {
            println!("{}", serde_json::json!({"type": "adopt_plan", "plan": plan}));
        } else {
            print!("{}", takeover::render_text(&plan));
        }
        if let Some(e) = takeover::stop_reason(&plan, a.allow_replace) {
            return Err(e.into());
        }
        if !plan.has_changes() {
            if a.json {
                println!("{}", serde_json::json!({"type": "report", "adopted": []}));
            } else {
                println!("Nothing to adopt.");
            }
            return Ok(0);
        }
        if !a.auto_approve {
            confirm("\nDo you want to adopt these resources?")?;
        }
        let adopted = takeover::run(&s.cx, &REGISTRY, &desired, &plan, &marked).await?;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"type": "report", "adopted": adopted})
            );
        } else {
            println!(
                "Adopted {} resource(s) into stack {}. `streamstack plan {}` shows what apply still changes.",
                adopted.len(),
                plan.stack,
                a.spec.display()
            );
        }
        Ok(0)
    })
}
