#!/bin/sh
# Installs the Debian packages Gatehouse's labs and demo need, when missing.
# As root it uses apt-get; otherwise it says what is missing and carries on
# (tests that need the packages then skip, saying why).
set -eu
need=""
command -v ip   >/dev/null 2>&1 || need="$need iproute2"
command -v nft  >/dev/null 2>&1 || need="$need nftables"
command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
command -v iperf3 >/dev/null 2>&1 || need="$need iperf3"
# The demo and the metrics lab read the Prometheus endpoint with curl.
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v tshark >/dev/null 2>&1 || need="$need tshark"
# contrib/systemd's test verifies the unit with systemd-analyze.
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
# For `make bench` (the throughput comparison); cheap enough to have always.
command -v wg >/dev/null 2>&1 || need="$need wireguard-tools"
[ -x /usr/sbin/charon-systemd ] || need="$need charon-systemd strongswan-swanctl libcharon-extra-plugins"
# strongSwan's openssl and gcm plugins (AES-GCM, ECDSA, ECP groups) are
# only recommended by charon-systemd, and recommends are not installed.
[ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] || need="$need libstrongswan-standard-plugins"
# EAP-MSCHAPv2 for strongSwan road warriors.
[ -e /usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so ] || need="$need libcharon-extauth-plugins"
# MIT Kerberos: a KDC and kadmin.local, which tests start in a temporary
# folder with a realm of their own.
command -v krb5kdc >/dev/null 2>&1 || [ -x /usr/sbin/krb5kdc ] || need="$need krb5-kdc"
command -v kadmin.local >/dev/null 2>&1 || [ -x /usr/sbin/kadmin.local ] || need="$need krb5-admin-server"
command -v kinit >/dev/null 2>&1 || need="$need krb5-user"
# MIT's GSS-API from Python: auth/krb5 exchanges tokens with it.
[ -e /usr/lib/python3/dist-packages/gssapi ] || need="$need python3-gssapi"
# FreeRADIUS for the RADIUS tests, which start it with a configuration of
# their own; radclient sends Disconnect-Requests.
[ -x /usr/sbin/freeradius ] || need="$need freeradius"
[ -x /usr/bin/radclient ] || need="$need freeradius-utils"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: missing:$need; run as root (or apt-get install$need) for the namespace labs" >&2
	exit 0
fi
echo "install-test-deps: apt-get install$need"
export DEBIAN_FRONTEND=noninteractive
# tshark's package asks whether non-root users may capture: answer no.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $need
