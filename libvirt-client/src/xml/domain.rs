//! [`Domain`]: a libvirt domain definition, typed where common, lossless everywhere.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::devices::{Device, Disk, Interface};
use super::error::XmlError;
use super::parts::{merge, Clock, Cpu, Os, Schema, Vcpu, XmlPart};
use super::tree::{Element, Node};
use super::types::{invalid, DomainType, LifecycleAction, Memory};

/// A libvirt domain definition (`<domain>`), as `virsh dumpxml` prints it and `virsh define`
/// takes it.
///
/// The whole document is kept as an [`Element`] tree, so everything this crate does not model
/// (unknown elements and attributes, namespaced metadata, comments) survives
/// [`from_xml`](Self::from_xml) → [`to_xml`](Self::to_xml) untouched. Typed getters read from
/// that tree; typed setters write into it, replacing only what their type models.
///
/// ```
/// use libvirt_client::xml::{Domain, Memory, LifecycleAction};
///
/// let mut dom = Domain::from_xml(
///     "<domain type='qemu'><name>tiny</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
///      <os><type arch='x86_64' machine='pc'>hvm</type></os><on_crash>destroy</on_crash>\
///      <my:tag xmlns:my='urn:example'>kept</my:tag><devices/></domain>",
/// )?;
/// assert_eq!(dom.name().as_deref(), Some("tiny"));
/// assert_eq!(dom.memory()?.and_then(Memory::to_kib), Some(65536));
/// assert_eq!(dom.on_crash(), Some(LifecycleAction::Destroy));
/// dom.set_memory(Memory::mib(128));
/// let xml = dom.to_xml()?;
/// assert!(xml.contains("<my:tag xmlns:my='urn:example'>kept</my:tag>"));
/// assert_eq!(Domain::from_xml(&xml)?, dom);
/// # Ok::<(), libvirt_client::xml::XmlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    root: Element,
}

fn text_of(root: &Element, name: &str) -> Option<String> {
    root.child_text(name)
}

impl Domain {
    /// A domain with just `type` and `<name>`; see [`builder`](Self::builder) for more.
    pub fn new(kind: DomainType, name: impl Into<String>) -> Self {
        Domain {
            root: Element::new("domain")
                .with_attr("type", kind.as_str())
                .with_child(Element::new("name").with_text(name.into())),
        }
    }

    /// A builder for a new domain definition.
    pub fn builder(kind: DomainType, name: impl Into<String>) -> DomainBuilder {
        DomainBuilder::new(kind, name)
    }

    /// Parses domain XML. Fails on malformed XML or when the root is not `<domain>`; values of
    /// typed fields are only checked when read.
    pub fn from_xml(xml: &str) -> Result<Self, XmlError> {
        Self::from_element(Element::parse(xml)?)
    }

    /// Wraps an element tree whose root must be `<domain>`.
    pub fn from_element(root: Element) -> Result<Self, XmlError> {
        if root.name != "domain" {
            return Err(XmlError::WrongRoot {
                expected: "domain".into(),
                found: root.name,
            });
        }
        Ok(Domain { root })
    }

    /// The XML text (see [`Element::to_xml`]).
    pub fn to_xml(&self) -> Result<String, XmlError> {
        self.root.to_xml()
    }

    /// The underlying tree, for anything the typed API does not cover.
    pub fn element(&self) -> &Element {
        &self.root
    }

    /// The underlying tree, mutably. Renaming the root makes the value something other than a
    /// domain; don't.
    pub fn element_mut(&mut self) -> &mut Element {
        &mut self.root
    }

    /// The underlying tree, by value.
    pub fn into_element(self) -> Element {
        self.root
    }

    /// The `type` attribute: the hypervisor driver.
    pub fn domain_type(&self) -> Option<DomainType> {
        self.root.attr("type").map(DomainType::from)
    }

    /// Sets the `type` attribute.
    pub fn set_domain_type(&mut self, kind: DomainType) {
        self.root.set_attr("type", kind.as_str());
    }

    /// The `id` attribute: present while the domain runs (`None` in inactive XML).
    pub fn id(&self) -> Result<Option<i32>, XmlError> {
        match self.root.attr("id") {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid("domain@id", v, "expected an integer")),
        }
    }

    fn set_text_child(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.root.child_or_insert(name).set_text(v),
            None => {
                self.root.remove_children_named(name);
            }
        }
    }

    /// `<name>`.
    pub fn name(&self) -> Option<String> {
        text_of(&self.root, "name")
    }

    /// Sets `<name>`.
    pub fn set_name(&mut self, name: &str) {
        self.set_text_child("name", Some(name));
    }

    /// `<uuid>` as written.
    pub fn uuid(&self) -> Option<String> {
        text_of(&self.root, "uuid")
    }

    /// Sets (or with `None` removes) `<uuid>`.
    pub fn set_uuid(&mut self, uuid: Option<&str>) {
        self.set_text_child("uuid", uuid);
    }

    /// `<title>`.
    pub fn title(&self) -> Option<String> {
        text_of(&self.root, "title")
    }

    /// Sets (or with `None` removes) `<title>`.
    pub fn set_title(&mut self, title: Option<&str>) {
        self.set_text_child("title", title);
    }

    /// `<description>`.
    pub fn description(&self) -> Option<String> {
        text_of(&self.root, "description")
    }

    /// Sets (or with `None` removes) `<description>`.
    pub fn set_description(&mut self, description: Option<&str>) {
        self.set_text_child("description", description);
    }

    /// `<metadata>`, kept raw: applications put their own namespaced elements there.
    pub fn metadata(&self) -> Option<&Element> {
        self.root.child("metadata")
    }

    /// Replaces (or with `None` removes) `<metadata>`; the element is renamed `metadata`.
    pub fn set_metadata(&mut self, metadata: Option<Element>) {
        match metadata {
            Some(mut m) => {
                m.name = "metadata".into();
                self.root.replace_child("metadata", m);
            }
            None => {
                self.root.remove_children_named("metadata");
            }
        }
    }

    fn memory_of(&self, name: &str) -> Result<Option<Memory>, XmlError> {
        self.root.child(name).map(Memory::from_element).transpose()
    }

    fn set_memory_of(&mut self, name: &str, m: Option<Memory>) {
        match m {
            None => {
                self.root.remove_children_named(name);
            }
            Some(m) => {
                let new = m.to_element(name);
                let merged = match self.root.child(name) {
                    Some(old) => merge(old, new, &Schema::text(&["unit"])),
                    None => new,
                };
                self.root.replace_child(name, merged);
            }
        }
    }

    /// `<memory>`: the maximum memory at boot.
    pub fn memory(&self) -> Result<Option<Memory>, XmlError> {
        self.memory_of("memory")
    }

    /// Sets `<memory>` (other attributes of the element, e.g. `dumpCore`, are kept).
    pub fn set_memory(&mut self, m: Memory) {
        self.set_memory_of("memory", Some(m));
    }

    /// `<currentMemory>`: the memory actually given to the guest.
    pub fn current_memory(&self) -> Result<Option<Memory>, XmlError> {
        self.memory_of("currentMemory")
    }

    /// Sets (or with `None` removes) `<currentMemory>`.
    pub fn set_current_memory(&mut self, m: Option<Memory>) {
        self.set_memory_of("currentMemory", m);
    }

    /// `<maxMemory>`: the hotplug limit.
    pub fn max_memory(&self) -> Result<Option<Memory>, XmlError> {
        self.memory_of("maxMemory")
    }

    /// Reads any top-level typed part (`Vcpu`, `Os`, `Cpu`, `Clock`).
    pub fn part<P: XmlPart>(&self) -> Result<Option<P>, XmlError> {
        self.root.child(P::ELEMENT).map(P::from_element).transpose()
    }

    /// Writes a top-level typed part over the existing element (keeping what the type does not
    /// model, see [`XmlPart::merge_into`]) or appends it.
    pub fn set_part<P: XmlPart>(&mut self, part: &P) {
        let merged = match self.root.child(P::ELEMENT) {
            Some(old) => part.merge_into(old),
            None => part.to_element(),
        };
        self.root.replace_child(P::ELEMENT, merged);
    }

    /// Removes a top-level part, returning whether there was one.
    pub fn remove_part<P: XmlPart>(&mut self) -> bool {
        self.root.remove_children_named(P::ELEMENT) > 0
    }

    /// `<vcpu>`.
    pub fn vcpu(&self) -> Result<Option<Vcpu>, XmlError> {
        self.part()
    }

    /// Sets `<vcpu>`.
    pub fn set_vcpu(&mut self, vcpu: &Vcpu) {
        self.set_part(vcpu);
    }

    /// `<os>`.
    pub fn os(&self) -> Result<Option<Os>, XmlError> {
        self.part()
    }

    /// Sets `<os>`.
    pub fn set_os(&mut self, os: &Os) {
        self.set_part(os);
    }

    /// `<cpu>`.
    pub fn cpu(&self) -> Result<Option<Cpu>, XmlError> {
        self.part()
    }

    /// Sets `<cpu>`.
    pub fn set_cpu(&mut self, cpu: &Cpu) {
        self.set_part(cpu);
    }

    /// `<clock>`.
    pub fn clock(&self) -> Result<Option<Clock>, XmlError> {
        self.part()
    }

    /// Sets `<clock>`.
    pub fn set_clock(&mut self, clock: &Clock) {
        self.set_part(clock);
    }

    /// Names of the elements inside `<features>` (`acpi`, `apic`, `pae`, `hyperv`, ...); their
    /// settings are in [`element`](Self::element).
    pub fn features(&self) -> Vec<String> {
        self.root
            .child("features")
            .map(|f| f.elements().map(|e| e.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Turns a simple feature (`<acpi/>`) on (adding an empty element if absent) or off
    /// (removing it).
    pub fn set_feature(&mut self, name: &str, on: bool) {
        let features = self.root.child_or_insert("features");
        let present = features.child(name).is_some();
        if on && !present {
            features.append_element(Element::new(name));
        } else if !on {
            features.remove_children_named(name);
        }
    }

    fn lifecycle(&self, name: &str) -> Option<LifecycleAction> {
        self.root
            .child(name)
            .map(|e| LifecycleAction::from(e.text().trim()))
    }

    /// `<on_poweroff>`.
    pub fn on_poweroff(&self) -> Option<LifecycleAction> {
        self.lifecycle("on_poweroff")
    }

    /// `<on_reboot>`.
    pub fn on_reboot(&self) -> Option<LifecycleAction> {
        self.lifecycle("on_reboot")
    }

    /// `<on_crash>`.
    pub fn on_crash(&self) -> Option<LifecycleAction> {
        self.lifecycle("on_crash")
    }

    /// Sets (or with `None` removes) `<on_poweroff>`.
    pub fn set_on_poweroff(&mut self, a: Option<LifecycleAction>) {
        self.set_text_child("on_poweroff", a.as_ref().map(LifecycleAction::as_str));
    }

    /// Sets (or with `None` removes) `<on_reboot>`.
    pub fn set_on_reboot(&mut self, a: Option<LifecycleAction>) {
        self.set_text_child("on_reboot", a.as_ref().map(LifecycleAction::as_str));
    }

    /// Sets (or with `None` removes) `<on_crash>`.
    pub fn set_on_crash(&mut self, a: Option<LifecycleAction>) {
        self.set_text_child("on_crash", a.as_ref().map(LifecycleAction::as_str));
    }

    /// Every element inside `<devices>`, in order, typed where modelled. Indexes match
    /// [`set_device`](Self::set_device) and [`remove_device`](Self::remove_device).
    pub fn devices(&self) -> Result<Vec<Device>, XmlError> {
        match self.root.child("devices") {
            None => Ok(Vec::new()),
            Some(d) => d.elements().map(Device::from_element).collect(),
        }
    }

    /// `<emulator>`.
    pub fn emulator(&self) -> Option<String> {
        self.root
            .child("devices")
            .and_then(|d| d.child_text("emulator"))
    }

    /// The `<disk>` devices.
    pub fn disks(&self) -> Result<Vec<Disk>, XmlError> {
        self.typed_devices("disk", Disk::from_element)
    }

    /// The `<interface>` devices.
    pub fn interfaces(&self) -> Result<Vec<Interface>, XmlError> {
        self.typed_devices("interface", Interface::from_element)
    }

    fn typed_devices<T>(
        &self,
        name: &str,
        f: fn(&Element) -> Result<T, XmlError>,
    ) -> Result<Vec<T>, XmlError> {
        match self.root.child("devices") {
            None => Ok(Vec::new()),
            Some(d) => d.children_named(name).map(f).collect(),
        }
    }

    /// Appends a device to `<devices>` (created if absent).
    pub fn add_device(&mut self, device: &Device) {
        self.root
            .child_or_insert("devices")
            .append_element(device.to_element());
    }

    /// Writes `device` over the element at `index` in `<devices>` (keeping what its type does
    /// not model); returns `false` when there is no such element.
    pub fn set_device(&mut self, index: usize, device: &Device) -> bool {
        let Some(devices) = self.root.child_mut("devices") else {
            return false;
        };
        match devices.elements_mut().nth(index) {
            Some(old) => {
                *old = device.merge_into(old);
                true
            }
            None => false,
        }
    }

    /// Removes the element at `index` in `<devices>`, returning it.
    pub fn remove_device(&mut self, index: usize) -> Option<Element> {
        let devices = self.root.child_mut("devices")?;
        let pos = devices
            .children
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n, Node::Element(_)))
            .nth(index)
            .map(|(i, _)| i)?;
        let Node::Element(e) = devices.children.remove(pos) else {
            unreachable!("position of an element")
        };
        if pos > 0
            && matches!(devices.children.get(pos - 1), Some(Node::Text(t)) if t.trim().is_empty())
        {
            devices.children.remove(pos - 1);
        }
        Some(e)
    }
}

impl FromStr for Domain {
    type Err = XmlError;

    fn from_str(s: &str) -> Result<Self, XmlError> {
        Domain::from_xml(s)
    }
}

/// Serializes as the XML text, so a domain can sit in a JSON or TOML document.
impl Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let xml = self.to_xml().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&xml)
    }
}

/// Deserializes from the XML text.
impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let xml = String::deserialize(d)?;
        Domain::from_xml(&xml).map_err(serde::de::Error::custom)
    }
}

/// Builds a new [`Domain`] with elements in the order libvirt prints them.
///
/// ```
/// use libvirt_client::xml::{BootDevice, CharDevice, Device, Domain, DomainType, Memory, Os};
///
/// let mut os = Os::hvm("x86_64", "pc");
/// os.boot.push(BootDevice::Network);
/// let dom = Domain::builder(DomainType::Qemu, "tiny")
///     .memory(Memory::mib(64))
///     .vcpus(1)
///     .os(os)
///     .device(Device::Emulator("/usr/bin/qemu-system-x86_64".into()))
///     .device(Device::Serial(CharDevice::pty()))
///     .build();
/// assert_eq!(dom.vcpu()?.map(|v| v.count), Some(1));
/// assert!(dom.to_xml()?.starts_with("<domain type='qemu'>\n  <name>tiny</name>\n"));
/// # Ok::<(), libvirt_client::xml::XmlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainBuilder {
    /// `type`.
    pub kind: DomainType,
    /// `<name>`.
    pub name: String,
    /// `<uuid>`.
    pub uuid: Option<String>,
    /// `<title>`.
    pub title: Option<String>,
    /// `<description>`.
    pub description: Option<String>,
    /// `<metadata>`.
    pub metadata: Option<Element>,
    /// `<memory>`.
    pub memory: Option<Memory>,
    /// `<currentMemory>`.
    pub current_memory: Option<Memory>,
    /// `<vcpu>`.
    pub vcpu: Option<Vcpu>,
    /// `<os>`.
    pub os: Option<Os>,
    /// Simple features (`acpi`, `apic`, `pae`).
    pub features: Vec<String>,
    /// `<cpu>`.
    pub cpu: Option<Cpu>,
    /// `<clock>`.
    pub clock: Option<Clock>,
    /// `<on_poweroff>`.
    pub on_poweroff: Option<LifecycleAction>,
    /// `<on_reboot>`.
    pub on_reboot: Option<LifecycleAction>,
    /// `<on_crash>`.
    pub on_crash: Option<LifecycleAction>,
    /// `<devices>` children in order.
    pub devices: Vec<Device>,
}

impl DomainBuilder {
    /// A builder with only `type` and name set.
    pub fn new(kind: DomainType, name: impl Into<String>) -> Self {
        DomainBuilder {
            kind,
            name: name.into(),
            uuid: None,
            title: None,
            description: None,
            metadata: None,
            memory: None,
            current_memory: None,
            vcpu: None,
            os: None,
            features: Vec::new(),
            cpu: None,
            clock: None,
            on_poweroff: None,
            on_reboot: None,
            on_crash: None,
            devices: Vec::new(),
        }
    }

    /// Sets `<uuid>`.
    #[must_use]
    pub fn uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }

    /// Sets `<title>`.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets `<description>`.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets `<metadata>` (the element is renamed `metadata`).
    #[must_use]
    pub fn metadata(mut self, metadata: Element) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Sets `<memory>`.
    #[must_use]
    pub fn memory(mut self, m: Memory) -> Self {
        self.memory = Some(m);
        self
    }

    /// Sets `<currentMemory>`.
    #[must_use]
    pub fn current_memory(mut self, m: Memory) -> Self {
        self.current_memory = Some(m);
        self
    }

    /// Sets `<vcpu>` to `n` vCPUs.
    #[must_use]
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpu = Some(Vcpu::new(n));
        self
    }

    /// Sets `<vcpu>`.
    #[must_use]
    pub fn vcpu(mut self, v: Vcpu) -> Self {
        self.vcpu = Some(v);
        self
    }

    /// Sets `<os>`.
    #[must_use]
    pub fn os(mut self, os: Os) -> Self {
        self.os = Some(os);
        self
    }

    /// Adds a simple feature (`acpi`, `apic`, `pae`).
    #[must_use]
    pub fn feature(mut self, name: impl Into<String>) -> Self {
        self.features.push(name.into());
        self
    }

    /// Sets `<cpu>`.
    #[must_use]
    pub fn cpu(mut self, cpu: Cpu) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Sets `<clock>`.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets `<on_poweroff>`.
    #[must_use]
    pub fn on_poweroff(mut self, a: LifecycleAction) -> Self {
        self.on_poweroff = Some(a);
        self
    }

    /// Sets `<on_reboot>`.
    #[must_use]
    pub fn on_reboot(mut self, a: LifecycleAction) -> Self {
        self.on_reboot = Some(a);
        self
    }

    /// Sets `<on_crash>`.
    #[must_use]
    pub fn on_crash(mut self, a: LifecycleAction) -> Self {
        self.on_crash = Some(a);
        self
    }

    /// Appends a device.
    #[must_use]
    pub fn device(mut self, d: Device) -> Self {
        self.devices.push(d);
        self
    }

    /// The domain, laid out as libvirt prints it (two-space indentation).
    pub fn build(&self) -> Domain {
        let text = |name: &str, v: &Option<String>| {
            v.as_ref().map(|v| Element::new(name).with_text(v.clone()))
        };
        let action = |name: &str, v: &Option<LifecycleAction>| {
            v.as_ref().map(|v| Element::new(name).with_text(v.as_str()))
        };
        let features = (!self.features.is_empty()).then(|| {
            self.features.iter().fold(Element::new("features"), |f, n| {
                f.with_child(Element::new(n.clone()))
            })
        });
        let mut devices = Element::new("devices");
        for d in &self.devices {
            devices = devices.with_child(d.to_element());
        }
        let root = Element::new("domain")
            .with_attr("type", self.kind.as_str())
            .with_child(Element::new("name").with_text(self.name.clone()))
            .with_opt_child(text("uuid", &self.uuid))
            .with_opt_child(text("title", &self.title))
            .with_opt_child(text("description", &self.description))
            .with_opt_child(self.metadata.clone().map(|mut m| {
                m.name = "metadata".into();
                m
            }))
            .with_opt_child(self.memory.map(|m| m.to_element("memory")))
            .with_opt_child(self.current_memory.map(|m| m.to_element("currentMemory")))
            .with_opt_child(self.vcpu.as_ref().map(XmlPart::to_element))
            .with_opt_child(self.os.as_ref().map(XmlPart::to_element))
            .with_opt_child(features)
            .with_opt_child(self.cpu.as_ref().map(XmlPart::to_element))
            .with_opt_child(self.clock.as_ref().map(XmlPart::to_element))
            .with_opt_child(action("on_poweroff", &self.on_poweroff))
            .with_opt_child(action("on_reboot", &self.on_reboot))
            .with_opt_child(action("on_crash", &self.on_crash))
            .with_opt_child((!self.devices.is_empty()).then_some(devices));
        Domain {
            root: root.indented("  "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{BootDevice, CharDevice, DiskBus, VcpuPlacement};

    const TEST_DOMAIN: &str = "<domain type='test' id='1'>
  <name>test</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </interface>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </memballoon>
  </devices>
</domain>";

    #[test]
    fn reads_the_test_driver_domain_and_writes_it_back_byte_for_byte() {
        let d = Domain::from_xml(TEST_DOMAIN).unwrap();
        assert_eq!(d.to_xml().unwrap(), TEST_DOMAIN);
        assert_eq!(d.domain_type(), Some(DomainType::Test));
        assert_eq!(d.id().unwrap(), Some(1));
        assert_eq!(d.memory().unwrap().unwrap().to_kib(), Some(8388608));
        assert_eq!(d.current_memory().unwrap().unwrap(), Memory::kib(2097152));
        let v = d.vcpu().unwrap().unwrap();
        assert_eq!((v.count, v.placement), (2, Some(VcpuPlacement::Static)));
        let os = d.os().unwrap().unwrap();
        assert_eq!(
            (os.kind.as_deref(), os.arch.as_deref(), os.machine),
            (Some("hvm"), Some("i686"), None)
        );
        assert_eq!(os.boot, vec![BootDevice::Hd]);
        assert_eq!(d.on_reboot(), Some(LifecycleAction::Restart));
        assert_eq!(d.disks().unwrap()[0].target_bus, Some(DiskBus::Virtio));
        assert_eq!(
            d.interfaces().unwrap()[0].mac.as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(d.devices().unwrap().len(), 3);
    }

    #[test]
    fn setters_touch_only_their_element() {
        let mut d = Domain::from_xml(TEST_DOMAIN).unwrap();
        d.set_name("renamed");
        d.set_title(Some("T & <t>"));
        d.set_memory(Memory::gib(1));
        d.set_on_crash(Some(LifecycleAction::from("coredump-restart")));
        d.set_feature("acpi", true);
        let mut disk = d.disks().unwrap().remove(0);
        disk.readonly = true;
        assert!(d.set_device(0, &Device::Disk(disk.clone())));
        d.add_device(&Device::Console(CharDevice::pty()));
        let mut back = Domain::from_xml(&d.to_xml().unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.name().as_deref(), Some("renamed"));
        assert_eq!(back.title().as_deref(), Some("T & <t>"));
        assert_eq!(back.memory().unwrap(), Some(Memory::gib(1)));
        assert_eq!(back.on_crash(), Some(LifecycleAction::CoredumpRestart));
        assert_eq!(back.features(), vec!["acpi".to_string()]);
        assert_eq!(back.disks().unwrap()[0], disk);
        assert_eq!(back.devices().unwrap().len(), 4);
        assert!(back.remove_device(3).is_some_and(|e| e.name == "console"));
        assert!(!d
            .clone()
            .set_device(99, &Device::Console(CharDevice::pty())));
        // Untouched parts are unchanged.
        assert_eq!(
            back.os().unwrap(),
            Domain::from_xml(TEST_DOMAIN).unwrap().os().unwrap()
        );
    }

    const HAND_WRITTEN: &str = r#"<?xml version="1.0"?>
<!-- a comment before the root is not kept -->
<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0" future-attr="1">
  <name>web &amp; db</name>
  <title>A &lt;title&gt; with &#x263A; and &#9731;</title>
  <description><![CDATA[raw <b>markup</b> & ampersands]]> plus text</description>
  <metadata>
    <app1:foo xmlns:app1="http://app1.org/app1/" x="&quot;q&quot;">fooish</app1:foo>
    <app2:bar xmlns:app2="http://app1.org/app2/"><![CDATA[<x/>]]></app2:bar>
  </metadata>
  <memory unit="G" dumpCore="off">1</memory>
  <vcpu placement="auto" current="2">4</vcpu>
  <os firmware="efi">
    <type arch="aarch64" machine="virt">hvm</type>
    <kernel>/boot/vmlinuz</kernel>
    <initrd>/boot/initrd.img</initrd>
    <cmdline>console=ttyAMA0 root=/dev/vda1 quiet=&apos;yes&apos;</cmdline>
    <future-os-thing enabled="yes"/>
  </os>
  <features><acpi/><gic version="3"/><hyperv mode="custom"><relaxed state="on"/></hyperv></features>
  <cpu mode="host-passthrough"><topology sockets="1" cores="2" threads="2"/><cache mode="passthrough"/></cpu>
  <on_crash>explode-gracefully</on_crash>
  <devices>
    <!-- devices follow -->
    <emulator>/usr/bin/qemu-system-aarch64</emulator>
    <disk type="network" device="disk" future="x">
      <source protocol="rbd" name="pool/image"><host name="mon1" port="6789"/></source>
      <target dev="vda" bus="virtio"/>
      <unknown-child><deeper a="b">t</deeper></unknown-child>
    </disk>
    <shmem name="ivshmem"><size unit="M">4</size></shmem>
  </devices>
  <qemu:commandline><qemu:arg value="-newarg"/></qemu:commandline>
</domain>
"#;

    #[test]
    fn hand_written_domain_with_unknown_and_namespaced_content() {
        let d = Domain::from_xml(HAND_WRITTEN).unwrap();
        assert_eq!(d.domain_type(), Some(DomainType::Kvm));
        assert_eq!(d.name().as_deref(), Some("web & db"));
        assert_eq!(
            d.title().as_deref(),
            Some("A <title> with \u{263A} and \u{2603}")
        );
        assert_eq!(
            d.description().as_deref(),
            Some("raw <b>markup</b> & ampersands plus text")
        );
        let md = d.metadata().unwrap();
        assert_eq!(md.child("app1:foo").unwrap().attr("x"), Some("\"q\""));
        assert_eq!(
            md.child("app1:foo").unwrap().attr("xmlns:app1"),
            Some("http://app1.org/app1/")
        );
        assert_eq!(md.child("app2:bar").unwrap().text(), "<x/>");
        assert_eq!(d.memory().unwrap(), Some(Memory::gib(1)));
        let v = d.vcpu().unwrap().unwrap();
        assert_eq!(
            (v.count, v.current, v.placement),
            (4, Some(2), Some(crate::xml::VcpuPlacement::Auto))
        );
        let os = d.os().unwrap().unwrap();
        assert_eq!(
            os.cmdline.as_deref(),
            Some("console=ttyAMA0 root=/dev/vda1 quiet='yes'")
        );
        assert_eq!(os.firmware.as_deref(), Some("efi"));
        assert_eq!(d.features(), vec!["acpi", "gic", "hyperv"]);
        let cpu = d.cpu().unwrap().unwrap();
        assert_eq!(cpu.mode, Some(crate::xml::CpuMode::HostPassthrough));
        assert_eq!(cpu.topology.unwrap().threads, Some(2));
        assert_eq!(
            d.on_crash(),
            Some(LifecycleAction::Other("explode-gracefully".into()))
        );
        assert_eq!(d.on_reboot(), None);
        let devices = d.devices().unwrap();
        assert_eq!(devices.len(), 3);
        assert!(matches!(&devices[2], Device::Other(e) if e.name == "shmem"));
        let disk = &d.disks().unwrap()[0];
        assert_eq!(disk.kind, Some(crate::xml::DiskType::Network));
        assert_eq!(
            disk.source.as_ref().unwrap().protocol.as_deref(),
            Some("rbd")
        );

        // Lossless: write -> parse gives the same tree; everything unknown is in the text.
        let out = d.to_xml().unwrap();
        assert_eq!(Domain::from_xml(&out).unwrap(), d);
        for kept in [
            "future-attr='1'",
            "dumpCore='off'",
            "<future-os-thing enabled='yes'/>",
            "<gic version='3'/>",
            "<relaxed state='on'/>",
            "<cache mode='passthrough'/>",
            "<!-- devices follow -->",
            "future='x'",
            "<host name='mon1' port='6789'/>",
            "<unknown-child><deeper a='b'>t</deeper></unknown-child>",
            "<qemu:commandline><qemu:arg value='-newarg'/></qemu:commandline>",
            "<![CDATA[raw <b>markup</b> & ampersands]]> plus text",
            "<title>A &lt;title&gt; with \u{263A} and \u{2603}</title>",
            "x='&quot;q&quot;'",
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
        assert!(!out.contains("comment before the root"));

        // Typed edits keep the unknown content of the edited parts.
        let mut e = d.clone();
        e.set_memory(Memory::mib(512));
        let mut os2 = os.clone();
        os2.kernel = None;
        e.set_os(&os2);
        let mut disk2 = disk.clone();
        disk2.target_dev = Some("vdb".into());
        assert!(e.set_device(1, &Device::Disk(disk2)));
        let out = e.to_xml().unwrap();
        assert!(
            out.contains("<memory unit='MiB' dumpCore='off'>512</memory>"),
            "{out}"
        );
        assert!(out.contains("<future-os-thing enabled='yes'/>") && !out.contains("<kernel>"));
        assert!(out.contains("<host name='mon1' port='6789'/>") && out.contains("<unknown-child>"));
        assert!(out.contains("<target dev='vdb' bus='virtio'/>"));
    }

    #[test]
    fn malformed_domains_are_typed_errors() {
        type Check = fn(&XmlError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("<domain><name>x</domain>", |e| {
                matches!(e, XmlError::Syntax { .. })
            }),
            ("<domain><name>x</name>", |e| {
                matches!(e, XmlError::UnexpectedEof { .. })
            }),
            ("<domain><name>&bogus;</name></domain>", |e| {
                matches!(e, XmlError::Syntax { .. })
            }),
            ("<domain type='a' type='b'/>", |e| {
                matches!(e, XmlError::Syntax { .. })
            }),
            ("<domain/><domain/>", |e| {
                matches!(e, XmlError::OutsideRoot { .. })
            }),
            ("<domain>\u{0}</domain>", |e| {
                matches!(e, XmlError::InvalidChar { code: 0, .. })
            }),
            ("<domain><name>&#xFFFE;</name></domain>", |e| {
                matches!(e, XmlError::InvalidChar { .. })
            }),
            ("<!DOCTYPE domain><domain/>", |e| {
                matches!(e, XmlError::OutsideRoot { .. })
            }),
            ("<network/>", |e| matches!(e, XmlError::WrongRoot { .. })),
            ("", |e| matches!(e, XmlError::UnexpectedEof { .. })),
        ];
        for (xml, check) in cases {
            let err = Domain::from_xml(xml).unwrap_err();
            assert!(check(&err), "{xml:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn wrong_root_and_bad_values() {
        assert!(matches!(
            Domain::from_xml("<network/>"),
            Err(XmlError::WrongRoot { .. })
        ));
        let d = Domain::from_xml(
            "<domain id='x'><memory unit='KiB'>lots</memory><vcpu>-2</vcpu></domain>",
        )
        .unwrap();
        assert!(d.id().is_err());
        assert!(d.memory().is_err());
        assert!(d.vcpu().is_err());
        assert_eq!(d.name(), None);
    }

    #[test]
    fn serde_as_xml_string() {
        let d = Domain::from_xml(TEST_DOMAIN).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        let back: Domain = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let b = Domain::builder(DomainType::Qemu, "x").memory(Memory::mib(1));
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<DomainBuilder>(&j).unwrap(), b);
    }
}
