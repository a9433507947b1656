"""agraph-python's user, role and permission calls against a real quadmesh server,
as an AllegroGraph script makes them (AllegroGraphServer: addUser, addUserAccess,
addRole, ...), and what a user so made may then do."""

import os
import uuid

import pytest
from franz.miniclient.request import RequestError
from franz.openrdf.sail.allegrographserver import AllegroGraphServer


def server(user=None, password=None):
    return AllegroGraphServer(
        os.environ["QM_HOST"],
        int(os.environ["QM_PORT"]),
        user or os.environ["QM_USER"],
        password or os.environ["QM_PASSWORD"],
    )


def test_user_and_role_management():
    admin = server()
    default_users = set(admin.listUsers())
    assert os.environ["QM_USER"] in default_users
    name = "user-" + uuid.uuid4().hex[:8]
    admin.addUser(name, "xyzzy")
    assert name in admin.listUsers()
    admin.changeUserPassword(name, "xyzzy-new")
    as_user = server(name, "xyzzy-new")

    admin.addUserAccess(name, True, True)
    assert None in as_user.listCatalogs()
    access = admin.listUserAccess(name)
    assert access == [{"read": True, "write": True, "catalog": "*", "repository": "*"}]
    assert admin.listUserEffectiveAccess(name) == access

    admin.addUserPermission(name, "session")
    assert admin.listUserPermissions(name) == ["session"]
    assert admin.listUserEffectivePermissions(name) == ["session"]
    admin.addUserPermission(name, "eval")
    admin.addUserPermission(name, "replication")
    admin.deleteUserPermission(name, "replication")
    assert sorted(admin.listUserPermissions(name)) == ["eval", "session"]

    roles_before = set(admin.listRoles())
    admin.addRole("role-test")
    admin.addRole("role-to-delete")
    assert set(admin.listRoles()) == roles_before | {"role-test", "role-to-delete"}
    admin.addRoleAccess("role-to-delete", True, True, "/", "*")
    assert admin.listRoleAccess("role-to-delete") == [
        {"read": True, "write": True, "catalog": "/", "repository": "*"}
    ]
    admin.addUserRole(name, "role-to-delete")
    assert len(admin.listUserEffectiveAccess(name)) == 2
    admin.deleteUserRole(name, "role-to-delete")
    admin.deleteRoleAccess("role-to-delete", True, True, "/", "*")
    assert admin.listRoleAccess("role-to-delete") == []
    admin.deleteRole("role-to-delete")
    assert set(admin.listRoles()) == roles_before | {"role-test"}

    admin.addRolePermission("role-test", "eval")
    admin.addRolePermission("role-test", "session")
    admin.deleteRolePermission("role-test", "eval")
    assert admin.listRolePermissions("role-test") == ["session"]
    admin.addUserRole(name, "role-test")
    assert admin.listUserRoles(name) == ["role-test"]
    assert sorted(admin.listUserEffectivePermissions(name)) == ["eval", "session"]
    admin.deleteUserRole(name, "role-test")
    assert admin.listUserRoles(name) == []
    admin.deleteRole("role-test")
    assert set(admin.listRoles()) == roles_before

    admin.deleteUserAccess(name, True, True)
    assert admin.listUserAccess(name) == []
    admin.deleteUser(name)
    assert set(admin.listUsers()) == default_users


def test_a_read_only_user_reads_and_is_refused_writes():
    admin = server()
    catalog = admin.openCatalog()
    repository = "qmusers_" + uuid.uuid4().hex[:8]
    catalog.createRepository(repository)
    name = "reader-" + uuid.uuid4().hex[:8]
    admin.addUser(name, "reader-secret")
    admin.addUserAccess(name, True, False, "/", repository)
    try:
        as_reader = server(name, "reader-secret")
        assert repository in as_reader.openCatalog().listRepositories()
        with as_reader.openCatalog().getRepository(repository, "OPEN").getConnection() as conn:
            assert conn.size() == 0
            with pytest.raises(RequestError) as refused:
                conn.addTriple("<http://example.org/s>", "<http://example.org/p>", "<http://example.org/o>")
            assert refused.value.status == 403
            assert "write" in str(refused.value)
    finally:
        admin.deleteUser(name)
        catalog.deleteRepository(repository)
