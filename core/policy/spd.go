package policy

import (
	"net/netip"
	"sort"
)

// Policy is a compiled, immutable SPD. Build a new one on reload.
type Policy struct {
	Rules      []*Rule
	Entries    []*Entry // by weight, then rule order
	Exemptions []string
	ExemptName string
	Local      []netip.Addr

	exempt map[string]bool
	outIdx index
	inIdx  index
}

// New builds a policy from rules, in their order of definition.
func New(rules []*Rule, exemptName string, exemptions []string, local []netip.Addr) *Policy {
	p := &Policy{Rules: rules, ExemptName: exemptName, Exemptions: exemptions, Local: local, exempt: map[string]bool{}}
	for _, e := range exemptions {
		p.exempt[e] = true
	}
	seq := 0
	add := func(r *Rule, dir Direction, f Filter, src, dst Addr, sport, dport uint16, mirror bool) {
		p.Entries = append(p.Entries, &Entry{Rule: r, Dir: dir, Src: src, Dst: dst, Proto: f.Proto, SrcPort: sport, DstPort: dport,
			Mirrored: f.Mirrored, Mirror: mirror, Weight: weight(src, dst, f.Proto, sport, dport), Seq: seq})
		seq++
	}
	for _, r := range rules {
		for _, f := range r.Filters {
			if r.IsTunnel() {
				add(r, r.Dir, f, f.Src, f.Dst, 0, 0, false)
				if r.PerPair {
					p.Entries[len(p.Entries)-1].Pair = PairID(f.Src.Prefix, f.Dst.Prefix)
				}
				continue
			}
			add(r, Outbound, f, f.Src, f.Dst, f.SrcPort, f.DstPort, false)
			if f.Mirrored {
				add(r, Inbound, f, f.Dst, f.Src, f.DstPort, f.SrcPort, true)
			}
		}
	}
	sort.SliceStable(p.Entries, func(i, j int) bool {
		if p.Entries[i].Weight != p.Entries[j].Weight {
			return p.Entries[i].Weight > p.Entries[j].Weight
		}
		return p.Entries[i].Seq < p.Entries[j].Seq
	})
	p.outIdx.build(p.Entries, Outbound)
	p.inIdx.build(p.Entries, Inbound)
	return p
}

// IsLocal reports whether a is one of the gateway's addresses.
func (p *Policy) IsLocal(a netip.Addr) bool {
	a = a.Unmap()
	for _, l := range p.Local {
		if l == a {
			return true
		}
	}
	return false
}

// Lookup finds the decision for a packet travelling in dir.
func (p *Policy) Lookup(dir Direction, pkt Packet) Decision {
	pkt.Src, pkt.Dst = pkt.Src.Unmap(), pkt.Dst.Unmap()
	exempt := ""
	if pkt.Local {
		for _, c := range classify(pkt) {
			if p.exempt[c] {
				exempt = c
				break
			}
		}
	}
	idx := &p.outIdx
	if dir == Inbound {
		idx = &p.inIdx
	}
	if e := idx.lookup(&pkt, exempt != ""); e != nil {
		return Decision{Action: e.Rule.Action.Action, Entry: e}
	}
	if exempt != "" {
		return Decision{Action: Permit, Exempt: exempt}
	}
	return Default
}

// index is a tuple-space search over entries: entries of the same shape
// (address family, prefix lengths, which of protocol and ports are set)
// share one hash table keyed by the packet fields under that shape's masks.
// Shapes are probed by descending weight, so a lookup costs one hash probe
// per distinct shape, not one comparison per rule.
type index struct {
	groups []shapeGroup // by descending weight
}

type shapeGroup struct {
	weight uint32
	shapes []*shape
}

type shape struct {
	is4              bool
	srcBits, dstBits int
	proto            bool
	sport, dport     bool
	table            map[key][]*Entry // buckets in Seq order
}

type key struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
}

func (s *shape) keyOf(pkt *Packet) (key, bool) {
	if pkt.Src.Is4() != s.is4 || pkt.Dst.Is4() != s.is4 {
		return key{}, false
	}
	k := key{}
	src, _ := pkt.Src.Prefix(s.srcBits)
	dst, _ := pkt.Dst.Prefix(s.dstBits)
	k.src, k.dst = src.Addr(), dst.Addr()
	if s.proto {
		k.proto = pkt.Proto
	}
	if s.sport {
		k.sport = pkt.SrcPort
	}
	if s.dport {
		k.dport = pkt.DstPort
	}
	return k, true
}

func (ix *index) build(entries []*Entry, dir Direction) {
	type shapeID struct {
		is4                 bool
		srcBits, dstBits    int
		proto, sport, dport bool
	}
	shapes := map[shapeID]*shape{}
	groupOf := map[uint32]int{}
	insert := func(e *Entry, is4 bool) {
		if (!e.Src.Any && e.Src.Prefix.Addr().Is4() != is4) || (!e.Dst.Any && e.Dst.Prefix.Addr().Is4() != is4) {
			return
		}
		id := shapeID{is4, e.Src.bits(), e.Dst.bits(), e.Proto != 0, e.SrcPort != 0, e.DstPort != 0}
		s, ok := shapes[id]
		if !ok {
			s = &shape{is4: is4, srcBits: id.srcBits, dstBits: id.dstBits, proto: id.proto, sport: id.sport, dport: id.dport, table: map[key][]*Entry{}}
			shapes[id] = s
			gi, ok := groupOf[e.Weight]
			if !ok {
				gi = len(ix.groups)
				groupOf[e.Weight] = gi
				ix.groups = append(ix.groups, shapeGroup{weight: e.Weight})
			}
			ix.groups[gi].shapes = append(ix.groups[gi].shapes, s)
		}
		k := key{proto: e.Proto, sport: e.SrcPort, dport: e.DstPort}
		if e.Src.Any {
			k.src = zeroAddr(is4)
		} else {
			k.src = e.Src.Prefix.Masked().Addr()
		}
		if e.Dst.Any {
			k.dst = zeroAddr(is4)
		} else {
			k.dst = e.Dst.Prefix.Masked().Addr()
		}
		s.table[k] = append(s.table[k], e)
	}
	for _, e := range entries {
		if e.Dir != dir {
			continue
		}
		insert(e, true)
		insert(e, false)
	}
	// Entries arrive sorted by weight then Seq, so groups are already in
	// descending weight order and buckets in Seq order.
	sort.SliceStable(ix.groups, func(i, j int) bool { return ix.groups[i].weight > ix.groups[j].weight })
}

func zeroAddr(is4 bool) netip.Addr {
	if is4 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// accepts applies the rules that a match alone does not decide.
func accepts(e *Entry, pkt *Packet, exempt bool) bool {
	if e.Rule.IsTunnel() {
		return !tunnelRefuses(pkt.Dst, e.Dst)
	}
	// Exemptions apply to transport-mode filters only (seed).
	if exempt {
		return false
	}
	// Transport mode protects only the gateway's own traffic.
	return e.Rule.Action.Action != Negotiate || pkt.Local
}

func (ix *index) lookup(pkt *Packet, exempt bool) *Entry {
	for gi := range ix.groups {
		var best *Entry
		for _, s := range ix.groups[gi].shapes {
			k, ok := s.keyOf(pkt)
			if !ok {
				continue
			}
			for _, e := range s.table[k] {
				if best != nil && e.Seq >= best.Seq {
					break
				}
				if accepts(e, pkt, exempt) {
					best = e
					break
				}
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}
