//! The texts int8 calibrates on, and the precision `auto` measures with.
//!
//! SmoothQuant's factors need the range of every input channel of a projection. Measured on
//! these texts (short queries, sentences, a long passage, lists, code, numbers, other scripts)
//! at model load, in f32. They were written for this purpose and are not the parity texts the
//! tests compare on, so the accuracy bar is checked on texts the calibration never saw.

use candle_core::Device;

use crate::tokenize::{Batch, TextTokenizer};
use crate::EmbedError;

/// The calibration texts.
pub(crate) const TEXTS: &[&str] = &[
    "how do I reset my password",
    "cheap flights to lisbon in march",
    "what is the boiling point of water at altitude",
    "symptoms of vitamin D deficiency",
    "best way to store fresh basil",
    "The committee postponed its decision until the budget figures were audited.",
    "A lighthouse keeper records the weather every four hours, even on calm nights.",
    "She photographed the eclipse through a pinhole in a sheet of cardboard.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The bridge was closed after inspectors found cracks in two of its supporting cables.",
    "Interest rates rose for the third consecutive quarter, slowing mortgage applications.",
    "He learned to play the cello at forty and joined a community orchestra two years later.",
    "In 1869 the first transcontinental railroad in the United States was completed at Promontory Summit, Utah, joining the Central Pacific and Union Pacific lines. The project had taken six years, employed tens of thousands of workers, many of them Chinese and Irish immigrants, and cut the journey from coast to coast from months to about a week. Its completion reshaped commerce, settlement and the lives of the Indigenous nations whose lands it crossed.",
    "Install the package, then run the migration before starting the server; otherwise the schema check fails and the service refuses to start.",
    "Ingredients: 2 cups flour, 1 tsp baking soda, 1/2 tsp salt, 3 eggs, 250 ml milk.",
    "Error 503: the upstream service is unavailable. Retry after 30 seconds.",
    "fn main() { let v: Vec<i32> = (0..10).map(|x| x * x).collect(); println!(\"{v:?}\"); }",
    "SELECT name, count(*) FROM orders WHERE status = 'shipped' GROUP BY name ORDER BY 2 DESC;",
    "Q3 revenue: $4.2M (+12% YoY); EBITDA margin 18.5%; headcount 214.",
    "The patient presented with fever, cough and shortness of breath for three days.",
    "Terms and conditions apply. Offer valid while stocks last; see store for details.",
    "Mitochondria are membrane-bound organelles that generate most of the cell's ATP.",
    "Le musée est fermé le lundi et ouvre à dix heures les autres jours.",
    "Die Bahn fährt heute wegen Bauarbeiten nur bis zum Hauptbahnhof.",
    "El concierto empieza a las ocho, pero las puertas abren una hora antes.",
    "東京は日本の首都であり、世界最大級の都市圏を持つ。",
    "Москва — столица России и крупнейший город страны.",
    "!!! WOW!!! Limited time only >>> click here <<< ###",
    "yes",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "To be, or not to be, that is the question.",
    "Glaciers carve U-shaped valleys as they advance and leave moraines when they retreat.",
    "The algorithm runs in O(n log n) time and uses O(n) additional memory.",
    "Please find attached the revised contract; let me know if you have any questions.",
    "Neutron stars are so dense that a teaspoon of their material would weigh billions of tonnes.",
];

/// Every calibration text as its own batch (no padding, so padded rows cannot widen a range).
pub(crate) fn batches(tokenizer: &TextTokenizer, pad_id: u32) -> Result<Vec<Batch>, EmbedError> {
    TEXTS
        .iter()
        .map(|t| {
            let enc = tokenizer.encode(t)?;
            Batch::new(&[&enc], pad_id, &Device::Cpu)
        })
        .collect()
}

/// `model` (f32) with its projections in int8, calibrated on [`TEXTS`] through `tokenizer`.
pub(crate) fn int8_model(
    model: &crate::BertModel,
    tokenizer: &TextTokenizer,
) -> Result<crate::BertModel, EmbedError> {
    let maxima = model.input_maxima(&batches(tokenizer, model.config().pad_token_id)?)?;
    model.with_int8(&maxima)
}
