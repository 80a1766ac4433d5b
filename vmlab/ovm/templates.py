"""Templates and images: import into seed_pool, create a guest from a template (the
Utility Server copies the image and vm.cfg is rewritten), clone, install HVM from iso_pool."""

from __future__ import annotations

import numpy as np

from vmlab.hypervisor.domain import DomainConfig
from vmlab.ovm import constants as K
from vmlab.ovm import messages as M
from vmlab.ovm.errors import AgentUnreachable, CopyFailed, NameInUse, UnknownObject
from vmlab.ovm.inventory import Guest, Role, Template
from vmlab.ovm.network import check_vlan_id
from vmlab.ovm.storage import CopyCost, DiskImage, copy_cost

__all__ = ["TemplateOps"]


class TemplateOps:
    """Mixed into Manager."""

    def _free_name(self, name: str, what: str) -> None:
        DomainConfig(name=name)   # the same name rule as xm (letters, digits, -_.; not all digits)
        taken = {"guest": self.guests, "template": self.templates, "ISO": self.isos}[what]
        if name in taken:
            raise NameInUse(f"{what} name {name!r} already exists in pool {self.pool.name}; choose another name")

    def template(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            raise UnknownObject(f"template {name!r} is not in any seed_pool (templates: "
                                f"{', '.join(sorted(self.templates)) or 'none'}); import it first") from None

    def import_template(self, name: str, *, memory_mib: int = 512, vcpus: int = 1, kind: str = "pv",
                        image_mib: int = K.TEMPLATE_IMAGE_MIB, repo: str = "OVS") -> Template:
        """Put a template (vm.cfg + System.img) into `repo`'s seed_pool."""
        self._free_name(name, "template")
        r = self.repo(repo)
        DomainConfig(name=name, memory_mib=memory_mib, vcpus=vcpus)   # validate like xm would
        img = DiskImage(path=r.path("seed_pool", name, "System.img"), size_mib=image_mib)
        img.fill(np.random.default_rng(self.rng_seed("template", name)))
        r.images[img.path] = img
        r.files[r.path("seed_pool", name, "vm.cfg")] = (f"name = {name!r}\nmemory = {memory_mib}\nvcpus = {vcpus}\n"
                                                         + ("builder = 'hvm'\n" if kind == "hvm" else ""))
        t = Template(name=name, repo=repo, kind=kind, memory_mib=memory_mib, vcpus=vcpus, image_mib=image_mib)
        self.templates[name] = t
        return t

    def import_iso(self, name: str, *, size_mib: int = 3072, repo: str = "OVS") -> str:
        self._free_name(name, "ISO")
        r = self.repo(repo)
        img = DiskImage(path=r.path("iso_pool", name, f"{name}.iso"), size_mib=size_mib)
        img.fill(np.random.default_rng(self.rng_seed("iso", name)))
        r.images[img.path] = img
        self.isos[name] = repo
        return img.path

    # --- the Utility Server's copy ------------------------------------------------------------
    def utility_server(self) -> str:
        self.require_master()
        ups = [s for s in self.with_role(Role.UTILITY) if self.reachable(s)]
        if not ups:
            raise AgentUnreachable(f"no Utility Server of {self.pool.name} answers; give a running server the "
                                   "utility role (`vmlab ovm server roles NAME utility,vm`)")
        return ups[0]

    def copy_image(self, src: DiskImage, dst_path: str, repo) -> tuple[DiskImage, CopyCost]:
        util = self.utility_server()
        reply = self.send(util, M.CopyImage(src=src.path, dst=dst_path, nbytes=src.nbytes))
        if not reply.ok:
            done = reply.failure.done_bytes
            err = CopyFailed(f"{reply.failure.message}; the half-copied {dst_path} ({done >> 20} MiB) was removed "
                             "and nothing else changed; retry on another Utility Server")
            err.fail = util if reply.failure.kind == M.DIED else None
            raise err
        cost = copy_cost(repo.kind, src.nbytes)
        self.advance(cost.seconds)
        self.log("copy", server=util, detail=f"{src.path} -> {dst_path}: {cost}")
        return src.copy(dst_path), cost

    def _new_guest(self, name, *, memory_mib, vcpus, kind, repo, origin, ha, preferred, vlan, iso=None) -> Guest:
        if vlan is not None:
            check_vlan_id(vlan)
        uuid, mac = self.next_ids()
        g = Guest(name=name, uuid=uuid, mac=mac, memory_mib=memory_mib, vcpus=vcpus, kind=kind, repo=repo,
                  origin=origin, ha=False, preferred=tuple(preferred), vlan=vlan, iso=iso)
        DomainConfig(name=name, memory_mib=memory_mib, vcpus=vcpus)
        self.guests[name] = g
        if ha:
            self.set_guest_ha(name, True)
        self.write_cfg(self.guests[name])
        return self.guests[name]

    def create_from_template(self, template: str, name: str, *, memory_mib: int | None = None,
                             vcpus: int | None = None, server: str | None = None, repo: str = "OVS",
                             vlan: int | None = None, ha: bool = False, preferred=(), start: bool = True):
        """Copy the template's image to running_pool/<name>/ through the Utility Server, rewrite
        vm.cfg (name, uuid, MAC, memory, vCPUs, VLAN) and start the guest. Returns (guest, copy cost)."""
        t = self.template(template)
        self._free_name(name, "guest")
        memory_mib = memory_mib or t.memory_mib
        self.too_big(memory_mib)
        with self.transaction():
            src_repo, dst_repo = self.repo(t.repo), self.repo(repo)
            src = src_repo.images[src_repo.path("seed_pool", t.name, "System.img")]
            img, cost = self.copy_image(src, dst_repo.path("running_pool", name, "System.img"), dst_repo)
            dst_repo.images[img.path] = img
            self.checkpoint("after-copy")
            self._new_guest(name, memory_mib=memory_mib, vcpus=vcpus or t.vcpus, kind=t.kind, repo=repo,
                            origin=f"template:{t.name}", ha=ha, preferred=preferred, vlan=vlan)
            self.checkpoint("before-start")
            if start:
                self.start(name, server)
        return self.guests[name], cost

    def clone(self, source: str, name: str, *, repo: str | None = None, start: bool = False, **kw):
        """Copy a (stopped or running) guest's image and config under a new name, uuid and MAC."""
        s = self.guest(source)
        self._free_name(name, "guest")
        repo = repo or s.repo
        with self.transaction():
            src = self.image(s)
            dst_repo = self.repo(repo)
            img, cost = self.copy_image(src, dst_repo.path("running_pool", name, "System.img"), dst_repo)
            dst_repo.images[img.path] = img
            self.checkpoint("after-copy")
            self._new_guest(name, memory_mib=s.memory_mib, vcpus=s.vcpus, kind=s.kind, repo=repo,
                            origin=f"clone:{source}", ha=kw.get("ha", False), preferred=kw.get("preferred", ()),
                            vlan=kw.get("vlan", s.vlan))
            if start:
                self.start(name, kw.get("server"))
        return self.guests[name], cost

    def install_hvm(self, name: str, iso: str, *, memory_mib: int = 1024, vcpus: int = 1, disk_mib: int = 8192,
                    repo: str = "OVS", server: str | None = None, vlan: int | None = None):
        """An HVM guest with an empty System.img that boots the installer from iso_pool/<iso>."""
        if iso not in self.isos:
            raise UnknownObject(f"ISO {iso!r} is not in iso_pool (ISOs: {', '.join(sorted(self.isos)) or 'none'}); "
                                "import it first")
        self._free_name(name, "guest")
        self.too_big(memory_mib)
        with self.transaction():
            r = self.repo(repo)
            img = DiskImage(path=r.path("running_pool", name, "System.img"), size_mib=disk_mib)
            r.images[img.path] = img
            iso_repo = self.repos[self.isos[iso]]
            self._new_guest(name, memory_mib=memory_mib, vcpus=vcpus, kind="hvm", repo=repo, origin=f"iso:{iso}",
                            ha=False, preferred=(), vlan=vlan, iso=iso_repo.path("iso_pool", iso, f"{iso}.iso"))
            self.start(name, server)
            self.image(self.guests[name]).blocks[:] = 0   # the installer has written nothing yet
        return self.guests[name]
