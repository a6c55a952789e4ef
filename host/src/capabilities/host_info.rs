//! `host`: the live route table, the loaded packs, this pack's settings, the clock.

use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::host::{Host, PackInfo, RouteInfo};

impl Host for State {
    fn routes(&mut self) -> Vec<RouteInfo> {
        self.pack
            .services
            .catalog()
            .routes
            .iter()
            .map(|r| RouteInfo {
                method: r.method,
                path: r.path.clone(),
                summary: r.summary.clone(),
                pack: r.pack.clone(),
                access: r.access,
            })
            .collect()
    }

    fn packs(&mut self) -> Vec<PackInfo> {
        self.pack
            .services
            .catalog()
            .packs
            .iter()
            .map(|p| PackInfo {
                name: p.name.clone(),
                version: p.version.clone(),
                description: p.description.clone(),
            })
            .collect()
    }

    fn settings(&mut self) -> String {
        self.pack.settings_json.clone()
    }

    fn now_ms(&mut self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn build_info(&mut self) -> String {
        self.pack.services.build_info.clone()
    }
}
