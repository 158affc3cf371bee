//! The loaded XDP program and typed access to its maps. This is the only
//! module that talks to the kernel's BPF interface; everything above it works
//! with `lb_common` values.

mod batch;
mod flow_table;
mod meta;
mod object;
mod pin;
mod syn_allowance;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, IterableMap, Map, MapData, MapError, PerCpuArray, PerCpuValues},
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
    util::nr_cpus,
};
use lb_common::{
    ACTIVE_LOAD, FlowKey, FlowValue, IfaceMac, LcHints, LcSet, MAX_IFACES, RealValue, Reason,
    SETTINGS_F_DIRECTOR_DRAINED, SETTINGS_F_LOG_EVENTS, SETTINGS_F_SHARE_FLOWS, SHARE_RING_BYTES,
    ServiceKey, ServiceValue, Settings, TABLE_CHUNK_SLOTS, TableChunk, TrafficStats, VipKey,
    map_names as names, program_names,
};

pub(crate) use batch::{lookup_all, unsupported as batch_unsupported, update_entries};
pub use flow_table::FlowTable;
pub use meta::{META_ACTIVE, META_FREE, META_RETIRED, NAME as REAL_META_NAME, RealMeta};
pub use object::xdp_object;
pub use pin::{PinDir, ShapeMismatch};
use std::os::fd::AsFd as _;

/// Sizes of the maps, fixed when the program is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataplaneLimits {
    /// Connection-table capacity (flows).
    pub conntrack_size: u32,
    /// Real slots (a real in two services uses two).
    pub max_reals: u32,
    /// Services.
    pub max_services: u32,
    /// Slots of the shared scheduling table (rr/wrr sequences, Maglev rings).
    pub sched_table_size: u32,
    /// Least-connection member sets (two per lc service).
    pub lc_sets: u32,
}

impl DataplaneLimits {
    /// Capacity of the half-open table (`HALF_OPEN`): a quarter of the
    /// connection table, at least 1024. Handshakes in flight last a round
    /// trip; the table is for them, and a SYN flood evicts only its entries.
    #[must_use]
    pub fn half_open_size(&self) -> u32 {
        (self.conntrack_size / 4).max(1024)
    }

    /// `SCHED_TABLE` elements holding `sched_table_size` slots.
    #[must_use]
    pub fn sched_table_chunks(&self) -> u32 {
        self.sched_table_size.div_ceil(TABLE_CHUNK_SLOTS)
    }
}

/// Slots a table of `len` entries occupies: whole chunks, so every table
/// starts on a chunk boundary and no two share an element.
#[must_use]
pub fn table_footprint(len: u32) -> u32 {
    len.div_ceil(TABLE_CHUNK_SLOTS) * TABLE_CHUNK_SLOTS
}

impl Default for DataplaneLimits {
    fn default() -> Self {
        Self {
            conntrack_size: 1_000_000,
            max_reals: 65_536,
            max_services: 1024,
            // Room for 32 Maglev rings of 65537 slots, double-buffered twice
            // over, in 16 MiB.
            sched_table_size: 1 << 22,
            lc_sets: 512,
        }
    }
}

/// Errors from loading the program or touching its maps.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "this binary was built without the XDP object; build it with `cargo xtask build` \
         (which sets LB_XDP_OBJECT)"
    )]
    NoObject,
    #[error("loading the XDP object")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("the data path's event log: {0}")]
    EventLog(String),
    #[error("program `{name}`")]
    Program {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("map `{name}` is missing from the XDP object")]
    MissingMap { name: &'static str },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error("batch update of `{name}`")]
    Batch {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {index} is out of range (limit {limit})")]
    OutOfRange {
        what: &'static str,
        index: u64,
        limit: u64,
    },
    #[error("at most {MAX_IFACES} interfaces are supported, {count} given")]
    TooManyInterfaces { count: usize },
    #[error("counting CPUs: {0}")]
    Cpus(String),
    #[error(transparent)]
    PinnedShape(#[from] ShapeMismatch),
    #[error("{what} {path}")]
    Pin {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How the data path was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Fresh maps (first start, or no pinning).
    Fresh,
    /// Maps a previous `lbd` pinned, with their flows and counters.
    Adopted,
}

/// What attaching to one interface did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A new link in the requested mode.
    Attached(XdpMode),
    /// Driver mode failed; attached in generic (skb) mode.
    FellBack,
    /// A pinned link existed: the new program replaced the old atomically.
    Replaced,
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map {
        name,
        source: Box::new(source),
    }
}

/// The load balancer's program and maps, loaded into the kernel.
pub struct Dataplane {
    ebpf: Ebpf,
    limits: DataplaneLimits,
    cpus: usize,
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    vips: HashMap<MapData, VipKey, u32>,
    reals: Array<MapData, RealValue>,
    real_conns: Array<MapData, u64>,
    real_load: Array<MapData, u64>,
    real_stats: PerCpuArray<MapData, TrafficStats>,
    real_syn_retrans: PerCpuArray<MapData, u64>,
    service_stats: PerCpuArray<MapData, TrafficStats>,
    global_stats: PerCpuArray<MapData, u64>,
    sched_table: Array<MapData, TableChunk>,
    lc_sets: Array<MapData, LcSet>,
    lc_hints: Array<MapData, LcHints>,
    rr_cursor: PerCpuArray<MapData, u32>,
    conntrack: HashMap<MapData, FlowKey, FlowValue>,
    half_open: HashMap<MapData, FlowKey, FlowValue>,
    settings: Array<MapData, Settings>,
    real_meta: Array<MapData, RealMeta>,
    pins: Option<PinDir>,
    origin: Origin,
}

impl Dataplane {
    /// Loads the embedded object with the given map sizes and loads (but does
    /// not attach) the programs.
    pub fn load(limits: DataplaneLimits) -> Result<Self, DataplaneError> {
        Self::load_object(xdp_object()?, limits)
    }

    /// Loads an explicit object (tests, benchmarks), unpinned.
    pub fn load_object(object: &[u8], limits: DataplaneLimits) -> Result<Self, DataplaneError> {
        Self::open_object(object, limits, None)
    }

    /// Loads the embedded object with its maps pinned under `pins`, adopting
    /// the maps a previous `lbd` pinned there (flows, counters, tables).
    pub fn open_pinned(limits: DataplaneLimits, pins: &PinDir) -> Result<Self, DataplaneError> {
        Self::open_object(xdp_object()?, limits, Some(pins))
    }

    /// Loads `object`; with `pins`, every map is pinned (or adopted) there.
    pub fn open_object(
        object: &[u8],
        limits: DataplaneLimits,
        pins: Option<&PinDir>,
    ) -> Result<Self, DataplaneError> {
        // One list of maps sizes them, pins them and checks pinned ones.
        let shapes = Self::shapes(limits);
        let mut loader = EbpfLoader::new();
        for shape in &shapes {
            loader.map_max_entries(shape.name, shape.max_entries);
        }
        let origin = match pins {
            Some(dir) => {
                pin::check_shapes(dir, &shapes)?;
                let origin = if dir.has_maps() {
                    Origin::Adopted
                } else {
                    Origin::Fresh
                };
                dir.create().map_err(|e| DataplaneError::Pin {
                    what: "creating pin directory",
                    path: dir.root().to_owned(),
                    source: Box::new(e),
                })?;
                for shape in &shapes {
                    loader.map_pin_path(shape.name, dir.map(shape.name));
                }
                origin
            }
            None => Origin::Fresh,
        };
        let mut ebpf = loader
            .load(object)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        for name in [program_names::LB, program_names::FLOOR] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(DataplaneError::Program {
                    name,
                    source: Box::new(ProgramError::NotLoaded),
                })?
                .try_into()
                .map_err(|e| DataplaneError::Program {
                    name,
                    source: Box::new(e),
                })?;
            program.load().map_err(|e| DataplaneError::Program {
                name,
                source: Box::new(e),
            })?;
        }
        let real_meta = open_real_meta(pins, limits.max_reals)?;
        let cpus = nr_cpus().map_err(|(what, e)| DataplaneError::Cpus(format!("{what}: {e}")))?;

        let mut dataplane = Self {
            services: typed(&mut ebpf, names::SERVICES)?,
            vips: typed(&mut ebpf, names::VIPS)?,
            reals: typed(&mut ebpf, names::REALS)?,
            real_conns: typed(&mut ebpf, names::REAL_CONNS)?,
            real_load: typed(&mut ebpf, names::REAL_LOAD)?,
            real_stats: typed(&mut ebpf, names::REAL_STATS)?,
            real_syn_retrans: typed(&mut ebpf, names::REAL_SYN_RETRANS)?,
            service_stats: typed(&mut ebpf, names::SERVICE_STATS)?,
            global_stats: typed(&mut ebpf, names::GLOBAL_STATS)?,
            lc_sets: typed(&mut ebpf, names::LC_SETS)?,
            lc_hints: typed(&mut ebpf, names::LC_HINTS)?,
            rr_cursor: typed(&mut ebpf, names::RR_CURSOR)?,
            conntrack: typed(&mut ebpf, names::CONNTRACK)?,
            half_open: typed(&mut ebpf, names::HALF_OPEN)?,
            settings: typed(&mut ebpf, names::SETTINGS)?,
            sched_table: typed(&mut ebpf, names::SCHED_TABLE)?,
            real_meta,
            ebpf,
            limits,
            cpus,
            pins: pins.cloned(),
            origin,
        };
        // Adopted maps keep the previous lbd's allowance; an empty table
        // has all of it. Adopted, `HALF_OPEN` may hold half-open flows (of
        // an lbd from before `HALF_OPEN_GEN`, too): SYNs go there until the
        // first ageing pass says otherwise. (An older object without the
        // maps, loaded for an A/B benchmark, has neither to set.)
        if dataplane.ebpf.map(names::SYN_ALLOWANCE).is_some() {
            match origin {
                Origin::Fresh => dataplane.set_syn_allowance(crate::ageing::syn_allowance(
                    limits.conntrack_size,
                    0,
                    0,
                ))?,
                Origin::Adopted => dataplane.set_half_open_empty_at(None)?,
            }
        }
        Ok(dataplane)
    }

    /// Every map of the object as this build creates it (`REAL_META`, not
    /// in the object, is ignored by the loader).
    fn shapes(limits: DataplaneLimits) -> Vec<pin::MapShape> {
        fn shape<K, V>(name: &'static str, max_entries: u32) -> pin::MapShape {
            pin::MapShape {
                name,
                key_size: size_of::<K>() as u32,
                value_size: size_of::<V>() as u32,
                max_entries,
            }
        }
        vec![
            shape::<ServiceKey, ServiceValue>(names::SERVICES, limits.max_services),
            shape::<VipKey, u32>(names::VIPS, limits.max_services),
            shape::<u32, RealValue>(names::REALS, limits.max_reals),
            shape::<u32, u64>(names::REAL_CONNS, limits.max_reals),
            shape::<u32, u64>(names::REAL_INACTIVE, limits.max_reals),
            shape::<u32, u64>(names::REAL_LOAD, limits.max_reals),
            shape::<u32, TrafficStats>(names::REAL_STATS, limits.max_reals),
            shape::<u32, u64>(names::REAL_SYN_RETRANS, limits.max_reals),
            shape::<u32, TrafficStats>(names::SERVICE_STATS, limits.max_services),
            shape::<u32, u64>(names::GLOBAL_STATS, Reason::COUNT),
            shape::<u32, TableChunk>(names::SCHED_TABLE, limits.sched_table_chunks()),
            shape::<u32, LcSet>(names::LC_SETS, limits.lc_sets),
            shape::<u32, LcHints>(names::LC_HINTS, limits.lc_sets),
            shape::<u32, u32>(names::RR_CURSOR, limits.max_services),
            shape::<FlowKey, FlowValue>(names::CONNTRACK, limits.conntrack_size),
            shape::<FlowKey, FlowValue>(names::HALF_OPEN, limits.half_open_size()),
            shape::<u32, Settings>(names::SETTINGS, 1),
            // A ring buffer has no key or value; its size is in bytes.
            shape::<(), ()>(names::SHARE_EVENTS, SHARE_RING_BYTES),
            shape::<u32, u64>(names::SHARE_DROPPED, 1),
            shape::<u32, u64>(names::SYN_ALLOWANCE, 1),
            shape::<u32, u64>(names::HALF_OPEN_GEN, 2),
            shape::<u32, RealMeta>(meta::NAME, limits.max_reals),
        ]
    }

    /// Whether the maps were adopted from a previous `lbd`.
    #[must_use]
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The pin directory, when pinned.
    #[must_use]
    pub fn pins(&self) -> Option<&PinDir> {
        self.pins.as_ref()
    }

    /// Swaps `program` into the link pinned at `path` (`BPF_LINK_UPDATE`).
    fn replace_in_pinned_link(program: &mut Xdp, path: &std::path::Path) -> Result<(), String> {
        let pinned = PinnedLink::from_pin(path).map_err(|e| e.to_string())?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| e.to_string())?;
        let id = program.attach_to_link(link).map_err(|e| {
            std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| format!("{e}: {s}"))
        })?;
        // The pin keeps the link; this process must not detach it.
        drop(program.take_link(id).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// Attaches the balancer to `ifname` through a link pinned under the pin
    /// directory, so it stays attached when `lbd` exits. If a link is
    /// already pinned for the interface (a previous `lbd`), this program
    /// replaces the old one in it atomically. Driver mode falls back to
    /// generic mode when `fallback` is set and the driver refuses.
    pub fn attach_pinned(
        &mut self,
        ifname: &str,
        mode: XdpMode,
        fallback: bool,
    ) -> Result<Attachment, DataplaneError> {
        let Some(pins) = self.pins.clone() else {
            self.attach(ifname, mode)?;
            return Ok(Attachment::Attached(mode));
        };
        let path = pins.link(ifname);
        let name = program_names::LB;
        let program_error = |e: ProgramError| DataplaneError::Program {
            name,
            source: Box::new(e),
        };
        let pin_error = |what: &'static str, path: &std::path::Path| {
            let path = path.to_owned();
            move |e: Box<dyn std::error::Error + Send + Sync>| DataplaneError::Pin {
                what,
                path,
                source: e,
            }
        };
        let program = self.program(name)?;
        if path.exists() {
            match Self::replace_in_pinned_link(program, &path) {
                Ok(()) => return Ok(Attachment::Replaced),
                // E.g. the interface was deleted and created again ("link
                // has been severed"): the old link is useless; attach anew.
                Err(e) => {
                    tracing::warn!(
                        interface = ifname,
                        error = %e,
                        "the pinned XDP link cannot be reused; attaching a new one"
                    );
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let (id, outcome) = match program.attach(ifname, mode) {
            Ok(id) => (id, Attachment::Attached(mode)),
            Err(e) if fallback && mode == XdpMode::Driver => {
                tracing::warn!(
                    interface = ifname,
                    error = %e,
                    "driver-mode XDP refused; attaching in generic mode (slower)"
                );
                (
                    program
                        .attach(ifname, XdpMode::Skb)
                        .map_err(program_error)?,
                    Attachment::FellBack,
                )
            }
            Err(e) => return Err(program_error(e)),
        };
        let link = program.take_link(id).map_err(program_error)?;
        let fd_link = FdLink::try_from(link).map_err(|e| {
            pin_error(
                "the kernel gave a netlink (unpinnable) XDP attachment for",
                &path,
            )(Box::new(e))
        })?;
        fd_link
            .pin(&path)
            .map_err(|e| pin_error("pinning link", &path)(Box::new(e)))?;
        Ok(outcome)
    }

    #[must_use]
    pub fn limits(&self) -> DataplaneLimits {
        self.limits
    }

    /// A loaded program, for attaching or `BPF_PROG_TEST_RUN`.
    pub fn program(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        self.ebpf
            .program_mut(name)
            .ok_or(DataplaneError::Program {
                name,
                source: Box::new(ProgramError::NotLoaded),
            })?
            .try_into()
            .map_err(|e| DataplaneError::Program {
                name,
                source: Box::new(e),
            })
    }

    /// Attaches the balancer to an interface (in the caller's network
    /// namespace). The program stays attached while `self` lives.
    pub fn attach(&mut self, ifname: &str, mode: XdpMode) -> Result<XdpLinkId, DataplaneError> {
        let name = program_names::LB;
        self.program(name)?
            .attach(ifname, mode)
            .map_err(|e| DataplaneError::Program {
                name,
                source: Box::new(e),
            })
    }

    /// The interfaces the program forwards on, with the MAC each sends from.
    pub fn set_interfaces(&mut self, ifaces: &[(u32, [u8; 6])]) -> Result<(), DataplaneError> {
        if ifaces.len() > MAX_IFACES {
            return Err(DataplaneError::TooManyInterfaces {
                count: ifaces.len(),
            });
        }
        // The handover fields stay as they are.
        let mut settings = Settings {
            iface_count: ifaces.len() as u32,
            ifaces: Default::default(),
            ..self.settings()?
        };
        for (slot, (ifindex, mac)) in settings.ifaces.iter_mut().zip(ifaces) {
            *slot = IfaceMac {
                ifindex: *ifindex,
                mac: *mac,
                _pad: [0; 2],
            };
        }
        self.settings
            .set(0, settings, 0)
            .map_err(map_err(names::SETTINGS))
    }

    /// `SETTINGS[0]` as the data path sees it now.
    fn settings(&self) -> Result<Settings, DataplaneError> {
        self.settings.get(&0, 0).map_err(map_err(names::SETTINGS))
    }

    /// Until `until_ns` (`CLOCK_MONOTONIC`), mid-connection TCP packets of
    /// flows this director does not know go to `previous_master` (see
    /// `Settings::handover_until_ns`); `until_ns` 0 ends it.
    pub fn set_handover(
        &mut self,
        previous_master: [u8; 6],
        until_ns: u64,
    ) -> Result<(), DataplaneError> {
        let settings = Settings {
            handover_until_ns: until_ns,
            handover_mac: previous_master,
            ..self.settings()?
        };
        self.settings
            .set(0, settings, 0)
            .map_err(map_err(names::SETTINGS))
    }

    /// Switches the data path's rare-event log (see `xdp-ebpf/src/events.rs`)
    /// on or off, at once, without touching anything else.
    pub fn set_event_log(&mut self, on: bool) -> Result<(), DataplaneError> {
        self.set_settings_flag(SETTINGS_F_LOG_EVENTS, on)
    }

    /// Sets or clears one of `Settings::flags`, leaving the rest.
    fn set_settings_flag(&mut self, flag: u32, on: bool) -> Result<(), DataplaneError> {
        let mut settings = self.settings()?;
        if on {
            settings.flags |= flag;
        } else {
            settings.flags &= !flag;
        }
        self.settings
            .set(0, settings, 0)
            .map_err(map_err(names::SETTINGS))
    }

    /// Records whether the director is drained (`lbctl director drain`) in
    /// the pinned settings, for the next lbd (see
    /// [`SETTINGS_F_DIRECTOR_DRAINED`]).
    pub fn set_director_drained(&mut self, drained: bool) -> Result<(), DataplaneError> {
        self.set_settings_flag(SETTINGS_F_DIRECTOR_DRAINED, drained)
    }

    /// Whether a drain is recorded (by this lbd or by the one whose pinned
    /// maps it adopted).
    pub fn director_drained(&self) -> Result<bool, DataplaneError> {
        Ok(self.settings()?.flags & SETTINGS_F_DIRECTOR_DRAINED != 0)
    }

    /// Switches flow sharing's reports (`SHARE_EVENTS`, see
    /// `xdp-ebpf/src/share.rs`) on or off.
    pub fn set_share_flows(&mut self, on: bool) -> Result<(), DataplaneError> {
        self.set_settings_flag(SETTINGS_F_SHARE_FLOWS, on)
    }

    /// The flow-sharing ring buffer, taken out of the object (once per
    /// load; a pinned one is opened from its pin by the sharing thread).
    pub fn share_events(&mut self) -> Result<aya::maps::RingBuf<MapData>, DataplaneError> {
        typed(&mut self.ebpf, names::SHARE_EVENTS)
    }

    /// Records the ring buffer had no room for, summed over CPUs.
    pub fn share_dropped(&self) -> Result<u64, DataplaneError> {
        self.per_cpu_total(names::SHARE_DROPPED)
    }

    /// Slot 0 of the per-CPU `u64` map `name`, summed over CPUs.
    fn per_cpu_total(&self, name: &'static str) -> Result<u64, DataplaneError> {
        let map: PerCpuArray<&MapData, u64> = self.typed_map(name)?;
        Ok(map.get(&0, 0).map_err(map_err(name))?.iter().sum())
    }

    /// A map the object still holds (not taken into a field), typed.
    fn typed_map<'a, T>(&'a self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
    {
        self.ebpf
            .map(name)
            .ok_or(DataplaneError::MissingMap { name })?
            .try_into()
            .map_err(map_err(name))
    }

    fn typed_map_mut<'a, T>(&'a mut self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        self.ebpf
            .map_mut(name)
            .ok_or(DataplaneError::MissingMap { name })?
            .try_into()
            .map_err(map_err(name))
    }

    /// Whether the rare-event log is on.
    pub fn event_log(&self) -> Result<bool, DataplaneError> {
        Ok(self.settings()?.flags & SETTINGS_F_LOG_EVENTS != 0)
    }

    /// The reader of the data path's event ring buffer, handing each event
    /// to `logger`; poll its descriptor, then `flush()`. Once per load: it
    /// takes the ring buffer out of the object.
    pub fn event_reader<T: log::Log>(
        &mut self,
        logger: T,
    ) -> Result<aya_log::EbpfLogger<T>, DataplaneError> {
        aya_log::EbpfLogger::init_with_logger(&mut self.ebpf, logger)
            .map_err(|e| DataplaneError::EventLog(e.to_string()))
    }

    /// Records who owns a real slot (see `RealMeta`).
    pub fn set_real_meta(&mut self, id: u32, meta: &RealMeta) -> Result<(), DataplaneError> {
        Self::check(id, "real", self.limits.max_reals)?;
        self.real_meta.set(id, meta, 0).map_err(map_err(meta::NAME))
    }

    /// Every real slot in use, with its owner.
    pub fn real_metas(&self) -> Result<Vec<(u32, RealMeta)>, DataplaneError> {
        let mut used = Vec::new();
        for id in 0..self.limits.max_reals {
            let meta = self.real_meta.get(&id, 0).map_err(map_err(meta::NAME))?;
            if meta.state != META_FREE {
                used.push((id, meta));
            }
        }
        Ok(used)
    }

    pub fn set_real(&mut self, id: u32, value: &RealValue) -> Result<(), DataplaneError> {
        Self::check(id, "real", self.limits.max_reals)?;
        self.reals.set(id, value, 0).map_err(map_err(names::REALS))
    }

    pub fn real(&self, id: u32) -> Result<RealValue, DataplaneError> {
        self.reals.get(&id, 0).map_err(map_err(names::REALS))
    }

    pub fn set_service(
        &mut self,
        key: &ServiceKey,
        value: &ServiceValue,
    ) -> Result<(), DataplaneError> {
        Self::check(value.id, "service id", self.limits.max_services)?;
        self.services
            .insert(key, value, 0)
            .map_err(map_err(names::SERVICES))
    }

    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DataplaneError> {
        self.services.remove(key).map_err(map_err(names::SERVICES))
    }

    pub fn service(&self, key: &ServiceKey) -> Result<Option<ServiceValue>, DataplaneError> {
        match self.services.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::SERVICES)(e)),
        }
    }

    /// Every programmed service.
    pub fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DataplaneError> {
        self.services
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(names::SERVICES))
    }

    pub fn add_vip(&mut self, key: &VipKey) -> Result<(), DataplaneError> {
        self.vips.insert(key, 1, 0).map_err(map_err(names::VIPS))
    }

    pub fn remove_vip(&mut self, key: &VipKey) -> Result<(), DataplaneError> {
        match self.vips.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::VIPS)(e)),
        }
    }

    /// Writes real ids into the shared scheduling table at `offset`.
    pub fn write_table(&mut self, offset: u32, ids: &[u32]) -> Result<(), DataplaneError> {
        let end = u64::from(offset) + u64::from(table_footprint(ids.len() as u32));
        if end > u64::from(self.limits.sched_table_size)
            || !offset.is_multiple_of(TABLE_CHUNK_SLOTS)
        {
            return Err(DataplaneError::OutOfRange {
                what: "scheduling table slot",
                index: end,
                limit: u64::from(self.limits.sched_table_size),
            });
        }
        let chunks: Vec<TableChunk> = ids
            .chunks(TABLE_CHUNK_SLOTS as usize)
            .map(|part| {
                let mut chunk = TableChunk::default();
                chunk.ids[..part.len()].copy_from_slice(part);
                chunk
            })
            .collect();
        batch::update_array(self.sched_table.map(), offset / TABLE_CHUNK_SLOTS, &chunks).map_err(
            |source| DataplaneError::Batch {
                name: names::SCHED_TABLE,
                source,
            },
        )
    }

    /// Reads back a range of the scheduling table (tests, `trace`).
    pub fn read_table(&self, offset: u32, len: u32) -> Result<Vec<u32>, DataplaneError> {
        let mut ids = Vec::with_capacity(len as usize);
        let mut chunk_index = None;
        let mut chunk = TableChunk::default();
        for slot in offset..offset + len {
            let index = slot / TABLE_CHUNK_SLOTS;
            if chunk_index != Some(index) {
                chunk = self
                    .sched_table
                    .get(&index, 0)
                    .map_err(map_err(names::SCHED_TABLE))?;
                chunk_index = Some(index);
            }
            ids.push(chunk.ids[(slot % TABLE_CHUNK_SLOTS) as usize]);
        }
        Ok(ids)
    }

    pub fn set_lc_set(&mut self, index: u32, set: &LcSet) -> Result<(), DataplaneError> {
        Self::check(index, "lc set", self.limits.lc_sets)?;
        self.lc_sets
            .set(index, set, 0)
            .map_err(map_err(names::LC_SETS))
    }

    pub fn lc_set(&self, index: u32) -> Result<LcSet, DataplaneError> {
        self.lc_sets.get(&index, 0).map_err(map_err(names::LC_SETS))
    }

    /// Sets the group hints of `LC_SETS[index]` (see `LcHints`).
    pub fn set_lc_hints(&mut self, index: u32, hints: &LcHints) -> Result<(), DataplaneError> {
        Self::check(index, "lc set", self.limits.lc_sets)?;
        self.lc_hints
            .set(index, hints, 0)
            .map_err(map_err(names::LC_HINTS))
    }

    pub fn lc_hints(&self, index: u32) -> Result<LcHints, DataplaneError> {
        self.lc_hints
            .get(&index, 0)
            .map_err(map_err(names::LC_HINTS))
    }

    /// Resets a service's round-robin positions on every CPU.
    pub fn reset_cursor(&mut self, service: u32) -> Result<(), DataplaneError> {
        let zeros = per_cpu(self.cpus, 0u32);
        self.rr_cursor
            .set(service, zeros, 0)
            .map_err(map_err(names::RR_CURSOR))
    }

    /// Active connections of a real as the data path counts them.
    pub fn real_connections(&self, id: u32) -> Result<u64, DataplaneError> {
        self.real_conns
            .get(&id, 0)
            .map_err(map_err(names::REAL_CONNS))
    }

    /// Sets a real's active count (and its load, keeping the inactive
    /// count).
    pub fn set_real_connections(&mut self, id: u32, count: u64) -> Result<(), DataplaneError> {
        Self::check(id, "real", self.limits.max_reals)?;
        let inactive = self.real_inactive(id)?;
        self.set_real_counts(id, count, inactive)
    }

    /// Sets a real's active and inactive counts and the least-connection
    /// load the data path keeps with them (`active * 256 + inactive`).
    pub fn set_real_counts(
        &mut self,
        id: u32,
        active: u64,
        inactive: u64,
    ) -> Result<(), DataplaneError> {
        Self::check(id, "real", self.limits.max_reals)?;
        // In the order the data path keeps (conntrack.rs): a reader between
        // the two writes derives an inactive count too low, not too high.
        let load = active.wrapping_mul(ACTIVE_LOAD).wrapping_add(inactive);
        let fewer = active < self.real_connections(id)?;
        let mut writes = [
            (&mut self.real_conns, names::REAL_CONNS, active),
            (&mut self.real_load, names::REAL_LOAD, load),
        ];
        if fewer {
            writes.reverse();
        }
        for (map, name, value) in writes {
            map.set(id, value, 0).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// A real's least-connection load as the data path keeps it.
    pub fn real_load(&self, id: u32) -> Result<u64, DataplaneError> {
        self.real_load
            .get(&id, 0)
            .map_err(map_err(names::REAL_LOAD))
    }

    /// Inactive (half-open) connections of a real as the data path counts
    /// them: not kept apart, but the part of its load that its active
    /// connections do not explain (`load - 256 * active`). Read load first:
    /// the data path raises the active count before the load and lowers it
    /// after, so a count changing meanwhile makes this too low, never too high.
    pub fn real_inactive(&self, id: u32) -> Result<u64, DataplaneError> {
        let load = self.real_load(id)?;
        let active = self.real_connections(id)?;
        Ok(load.saturating_sub(active.saturating_mul(ACTIVE_LOAD)))
    }

    /// Sets a real's inactive count (and its load, keeping the active one).
    pub fn set_real_inactive(&mut self, id: u32, count: u64) -> Result<(), DataplaneError> {
        Self::check(id, "real", self.limits.max_reals)?;
        let active = self.real_connections(id)?;
        self.set_real_counts(id, active, count)
    }

    /// A real's counters summed over CPUs.
    pub fn real_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        Ok(sum_stats(
            &self
                .real_stats
                .get(&id, 0)
                .map_err(map_err(names::REAL_STATS))?,
        ))
    }

    /// Clears a real slot's counters (when the slot is given to a new real).
    pub fn clear_real_stats(&mut self, id: u32) -> Result<(), DataplaneError> {
        let zeros = per_cpu(self.cpus, TrafficStats::default());
        self.real_stats
            .set(id, zeros, 0)
            .map_err(map_err(names::REAL_STATS))?;
        self.real_syn_retrans
            .set(id, per_cpu(self.cpus, 0u64), 0)
            .map_err(map_err(names::REAL_SYN_RETRANS))
    }

    /// Retransmitted SYNs of a real's half-open flows, summed over CPUs.
    pub fn real_syn_retransmits(&self, id: u32) -> Result<u64, DataplaneError> {
        Ok(self
            .real_syn_retrans
            .get(&id, 0)
            .map_err(map_err(names::REAL_SYN_RETRANS))?
            .iter()
            .sum())
    }

    /// A reader of every real's retransmitted-SYN count with a map handle
    /// of its own, for a thread that polls it (see [`SynRetransmits`]).
    pub fn syn_retransmit_reader(&self) -> Result<SynRetransmits, DataplaneError> {
        let fd = IterableMap::map(&self.real_syn_retrans)
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DataplaneError::Batch {
                name: names::REAL_SYN_RETRANS,
                source: e,
            })?;
        let data = MapData::from_fd(fd).map_err(map_err(names::REAL_SYN_RETRANS))?;
        Ok(SynRetransmits {
            map: PerCpuArray::try_from(Map::PerCpuArray(data))
                .map_err(map_err(names::REAL_SYN_RETRANS))?,
            cpus: self.cpus,
        })
    }

    /// Zeroes a service's counters (a reused service id starts afresh).
    pub fn clear_service_stats(&mut self, id: u32) -> Result<(), DataplaneError> {
        let zeros = per_cpu(self.cpus, TrafficStats::default());
        self.service_stats
            .set(id, zeros, 0)
            .map_err(map_err(names::SERVICE_STATS))
    }

    /// A service's counters summed over CPUs.
    pub fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        Ok(sum_stats(
            &self
                .service_stats
                .get(&id, 0)
                .map_err(map_err(names::SERVICE_STATS))?,
        ))
    }

    /// Packets per reason, summed over CPUs.
    pub fn reason_counts(&self) -> Result<Vec<(Reason, u64)>, DataplaneError> {
        Reason::ALL
            .iter()
            .map(|&reason| {
                let per_cpu = self
                    .global_stats
                    .get(&(reason as u32), 0)
                    .map_err(map_err(names::GLOBAL_STATS))?;
                Ok((reason, per_cpu.iter().sum()))
            })
            .collect()
    }

    pub fn flow(&self, key: &FlowKey) -> Result<Option<FlowValue>, DataplaneError> {
        match self.conntrack.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::CONNTRACK)(e)),
        }
    }

    /// Every flow in the connection table, read in batches (entry by entry
    /// on kernels without batch operations).
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        match batch::lookup_all(IterableMap::map(&self.conntrack)) {
            Ok(flows) => Ok(flows),
            Err(e) if batch::unsupported(&e) => self.flows_one_by_one(),
            Err(source) => Err(DataplaneError::Batch {
                name: names::CONNTRACK,
                source,
            }),
        }
    }

    fn flows_one_by_one(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        walk(&self.conntrack)
    }

    /// A flow of the half-open table.
    pub fn half_open_flow(&self, key: &FlowKey) -> Result<Option<FlowValue>, DataplaneError> {
        match self.half_open.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::HALF_OPEN)(e)),
        }
    }

    /// Every flow in the half-open table (handshakes not finished).
    pub fn half_open_flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        read_all(&self.half_open, names::HALF_OPEN)
    }

    /// Writes a half-open flow (tests, tools).
    pub fn insert_half_open_flow(
        &mut self,
        key: &FlowKey,
        value: &FlowValue,
    ) -> Result<(), DataplaneError> {
        self.half_open
            .insert(key, value, 0)
            .map_err(map_err(names::HALF_OPEN))
    }

    pub fn remove_half_open_flow(&mut self, key: &FlowKey) -> Result<(), DataplaneError> {
        match self.half_open.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::HALF_OPEN)(e)),
        }
    }

    pub fn insert_flow(&mut self, key: &FlowKey, value: &FlowValue) -> Result<(), DataplaneError> {
        self.conntrack
            .insert(key, value, 0)
            .map_err(map_err(names::CONNTRACK))
    }

    pub fn remove_flow(&mut self, key: &FlowKey) -> Result<(), DataplaneError> {
        match self.conntrack.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::CONNTRACK)(e)),
        }
    }

    fn check(index: u32, what: &'static str, limit: u32) -> Result<(), DataplaneError> {
        if index < limit {
            Ok(())
        } else {
            Err(DataplaneError::OutOfRange {
                what,
                index: u64::from(index),
                limit: u64::from(limit),
            })
        }
    }
}

/// Every real's retransmitted-SYN count (`REAL_SYN_RETRANS`), read from a
/// thread of its own: one `BPF_MAP_LOOKUP_BATCH` for all the slots in use
/// (entry by entry on kernels without it).
pub struct SynRetransmits {
    map: PerCpuArray<MapData, u64>,
    cpus: usize,
}

impl SynRetransmits {
    /// The counts of real slots `0..slots`, summed over CPUs.
    pub fn read(&self, slots: u32) -> Result<Vec<u64>, DataplaneError> {
        let slots = slots.min(self.map.len());
        match batch::lookup_per_cpu_u64(IterableMap::map(&self.map), slots, self.cpus) {
            Ok(counts) => Ok(counts),
            Err(e) if batch::unsupported(&e) => (0..slots)
                .map(|id| {
                    Ok(self
                        .map
                        .get(&id, 0)
                        .map_err(map_err(names::REAL_SYN_RETRANS))?
                        .iter()
                        .sum())
                })
                .collect(),
            Err(source) => Err(DataplaneError::Batch {
                name: names::REAL_SYN_RETRANS,
                source,
            }),
        }
    }
}

/// `REAL_META` is not in the object: created here, pinned with the others.
fn open_real_meta(
    pins: Option<&PinDir>,
    max_reals: u32,
) -> Result<Array<MapData, RealMeta>, DataplaneError> {
    let name = meta::NAME;
    if let Some(dir) = pins {
        let path = dir.map(name);
        if path.exists() {
            let data = MapData::from_pin(&path).map_err(map_err(name))?;
            return Array::try_from(Map::Array(data)).map_err(map_err(name));
        }
        let map = Array::<MapData, RealMeta>::create(max_reals, 0).map_err(map_err(name))?;
        // Pinning consumes the typed map; reopen it from the pin.
        map.pin(&path).map_err(|e| DataplaneError::Pin {
            what: "pinning map",
            path: path.clone(),
            source: Box::new(e),
        })?;
        let data = MapData::from_pin(&path).map_err(map_err(name))?;
        return Array::try_from(Map::Array(data)).map_err(map_err(name));
    }
    Array::create(max_reals, 0).map_err(map_err(name))
}

/// Every entry of the connection table, two syscalls each; entries that
/// vanish during the walk (LRU eviction) are skipped.
pub(crate) fn walk(
    map: &HashMap<MapData, FlowKey, FlowValue>,
) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
    walk_named(map, names::CONNTRACK)
}

fn walk_named(
    map: &HashMap<MapData, FlowKey, FlowValue>,
    name: &'static str,
) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
    let mut out = Vec::new();
    for key in map.keys() {
        let key = key.map_err(map_err(name))?;
        match map.get(&key, 0) {
            Ok(value) => out.push((key, value)),
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(name)(e)),
        }
    }
    Ok(out)
}

/// Every entry of a flow table (`name`), in batches where the kernel can.
pub(crate) fn read_all(
    map: &HashMap<MapData, FlowKey, FlowValue>,
    name: &'static str,
) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
    match batch::lookup_all(IterableMap::map(map)) {
        Ok(flows) => Ok(flows),
        Err(e) if batch::unsupported(&e) => walk_named(map, name),
        Err(source) => Err(DataplaneError::Batch { name, source }),
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, DataplaneError> {
    ebpf.take_map(name)
        .ok_or(DataplaneError::MissingMap { name })
}

fn typed<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<Map, Error = MapError>,
{
    T::try_from(take(ebpf, name)?).map_err(map_err(name))
}

/// The same value for every CPU.
fn per_cpu<T: aya::Pod>(cpus: usize, value: T) -> PerCpuValues<T> {
    PerCpuValues::try_from(vec![value; cpus]).expect("exactly one value per possible CPU")
}

fn sum_stats(per_cpu: &PerCpuValues<TrafficStats>) -> TrafficStats {
    per_cpu
        .iter()
        .fold(TrafficStats::default(), |acc, s| TrafficStats {
            packets: acc.packets + s.packets,
            bytes: acc.bytes + s.bytes,
            new_flows: acc.new_flows + s.new_flows,
        })
}
