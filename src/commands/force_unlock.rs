//! `streamstack force-unlock SPEC LOCK_ID`

use streamstack::events::Events;
use streamstack::ops;

use super::{open_options, runtime, Outcome};
use streamstack::cli::{ForceUnlockArgs, Global};

pub fn run(g: &Global, a: &ForceUnlockArgs) -> Outcome {
    let (spec, id) = (&a.spec, &a.lock_id);
    runtime()?.block_on(async {
        let s = ops::open(spec, &open_options(g, Events::none())).await?;
        let was = streamstack::lock::force_unlock(&s.cx.clients, &s.cx.stack, id).await?;
        println!("Removed the lock of stack {}: {was}", s.cx.stack);
        Ok(0)
    })
}
