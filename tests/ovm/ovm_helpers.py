
from vmlab.ovm import Manager


def small_pool(*, servers=3, storage="nfs", memory_mib=2048, fencing=True, local_repo=True, seed=0):
    m = Manager.create_pool(servers=servers, storage=storage, memory_mib=memory_mib, local_repo=local_repo,
                            fencing=fencing, seed=seed)
    m.import_template("EL5", memory_mib=256, image_mib=256)
    return m


