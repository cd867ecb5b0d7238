"""dockyard.container: Docker's containers over the store, the runtime and
per-container supervisors (see shared/DESIGN.md).

The entry point is :class:`~.service.ContainerService` (asyncio-native;
await every operation on the daemon's loop)::

    service = ContainerService(data_root=root, store=store, images=image_service,
                               publish=bus.publish, runtime_root=exec_root / "runtime")
    await service.open()                     # reconcile: live-restore
    r = await service.create(config, host_config, networking_config, name="web")
    await service.start(r["Id"])
    async for stream, line in service.logs(r["Id"], follow=True): ...
    await service.close()                    # containers keep running

Modules:

``service``     ContainerService, StdioSession (attach/exec I/O), ContainerCounts
``config``      Config/HostConfig: image merge, validation with Docker's messages
``spec``        Config + HostConfig -> OCI config.json (build_spec, SpecContext)
``defaults``    Docker's default capabilities, mounts, masked paths, device rules
``mounts``      Binds / Mounts / Tmpfs -> MountPoint
``users``       User resolution in the image's /etc/passwd and /etc/group
``model``       Container record, State, Health; IDs, names, times
``db``          container records in the metadata DB (component "container")
``views``       inspect / list JSON shapes, status line, list and prune filters
``process``     the supervisor interface (ProcessBackend); ``supervised`` implements it
``execs``       exec records, exec process, detach keys
``health``      healthcheck probes and Health transitions
``archive``     docker cp: stat, tar out, safe extraction in
``stats``       Docker's stats JSON from cgroup stats
``top``         ps output filtered to a container
``etcfiles``    /etc/hostname, /etc/hosts, /etc/resolv.conf per container
``hostinfo``    what the host supports (CPUs, cgroup files, capabilities)
"""
