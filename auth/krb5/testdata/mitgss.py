#!/usr/bin/python3
"""MIT's GSS-API (libgssapi_krb5, through python3-gssapi) at the other end
of one auth/krb5 security context, for its tests.

    mitgss.py initiate TARGET   # credentials from KRB5CCNAME
    mitgss.py accept SERVICE    # key from KRB5_KTNAME

Tokens go over stdin and stdout, one per line in hex: the AP-REQ and
AP-REP, then a Wrap token each way; last, the text MIT read from the
other side's Wrap token, and the peer's name (acceptor)."""
import sys

import gssapi


def send(b):
    print(b.hex(), flush=True)


def recv():
    return bytes.fromhex(sys.stdin.readline().strip())


role, name = sys.argv[1], sys.argv[2]
principal = gssapi.Name(name, gssapi.NameType.kerberos_principal)
flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.integrity,
         gssapi.RequirementFlag.confidentiality]
if role == "initiate":
    ctx = gssapi.SecurityContext(name=principal, mech=gssapi.MechType.kerberos, usage="initiate", flags=flags)
    send(ctx.step())
    ctx.step(recv())
else:
    creds = gssapi.Credentials(name=principal, usage="accept")
    ctx = gssapi.SecurityContext(creds=creds, usage="accept")
    send(ctx.step(recv()))
if not ctx.complete:
    sys.exit("the context is not complete")
send(ctx.wrap(b"sealed by MIT", True).message)
got = ctx.unwrap(recv())
if not got.encrypted:
    sys.exit("the Wrap token was not sealed")
send(got.message)
if role == "accept":
    send(str(ctx.initiator_name).encode())
