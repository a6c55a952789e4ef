//! `packs`: in-process calls into other packs. Not available yet (it arrives with admin_ops):
//! every call answers `unavailable`, which the guest can handle.

use crate::runtime::State;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::Response;
use crate::runtime::bindings::valhalla::pack::packs::{CallRequest, Host};

impl Host for State {
    async fn call(
        &mut self,
        pack: String,
        _request: CallRequest,
    ) -> Result<Response, CapabilityError> {
        Err(CapabilityError::Unavailable(format!(
            "calling pack `{pack}` in-process is not supported by this host yet"
        )))
    }
}
