//! How `completion` and `man` output is shown.

use crate::commands::completion::Generated;
use crate::output::{Human, Style};

impl Human for Generated {
    fn human(&self, _: &Style) -> String {
        self.text.clone()
    }
}
