package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// driver is a Driver served by a plugin instance.
type driver struct {
	inst *instance
	typ  string
}

var _ Driver = (*driver)(nil)

func (d *driver) Validate(ctx context.Context, r Request) ([]FieldError, error) {
	rpc, err := d.inst.conn(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, d.inst.host.cfg.StatusTimeout)
	defer cancel()
	resp, err := rpc.Validate(ctx, requestToProto(r))
	if err != nil {
		return nil, d.inst.callError("validate "+r.RID, err)
	}
	var out []FieldError
	for _, e := range resp.GetErrors() {
		out = append(out, FieldError{Keyword: e.GetKeyword(), Message: e.GetMessage()})
	}
	return out, nil
}

func (d *driver) Start(ctx context.Context, r Request) ([]string, error) {
	return d.action(ctx, "start", r)
}

func (d *driver) Stop(ctx context.Context, r Request) ([]string, error) {
	return d.action(ctx, "stop", r)
}

func (d *driver) action(ctx context.Context, verb string, r Request) ([]string, error) {
	rpc, err := d.inst.conn(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, d.inst.host.cfg.ActionTimeout)
	defer cancel()
	call := rpc.Start
	if verb == "stop" {
		call = rpc.Stop
	}
	resp, err := call(ctx, requestToProto(r))
	if err != nil {
		return nil, d.inst.callError(verb+" "+r.RID, err)
	}
	return resp.GetLog(), nil
}

func (d *driver) Status(ctx context.Context, r Request) StatusResult {
	rpc, ch, err := d.inst.connect(ctx)
	if err != nil {
		return StatusResult{Status: status.Undef, Log: []string{err.Error()}}
	}
	ctx, cancel := withDefaultTimeout(ctx, d.inst.host.cfg.StatusTimeout)
	defer cancel()
	req := requestToProto(r)
	if ch != nil {
		resp, err := ch.status(ctx, req)
		switch {
		case err == nil:
			return d.statusFromProto(r.RID, resp)
		case !errors.Is(err, errChannelDown):
			return StatusResult{Status: status.Undef, Log: []string{
				fmt.Sprintf("plugin %s: status %s: %v", pluginName(d.inst.binary), r.RID, err)}}
		}
		// The channel is down: gRPC tells whether the plugin is.
	}
	resp, err := rpc.Status(ctx, req)
	if err != nil {
		return StatusResult{Status: status.Undef, Log: []string{d.inst.callError("status "+r.RID, err).Error()}}
	}
	return d.statusFromProto(r.RID, resp)
}

// statusFromProto converts a status answer. The wire enum is open: a value
// core does not know (a newer SDK, a plugin's bug) becomes undef here, with
// the reason, so nothing above this boundary ever holds one.
func (d *driver) statusFromProto(rid string, resp *proto.StatusResponse) StatusResult {
	st, log := status.Status(resp.GetStatus()), resp.GetLog()
	if !st.Valid() {
		reason := fmt.Sprintf("plugin returned unknown status %d", int32(resp.GetStatus()))
		d.inst.host.log.Warn("plugin returned an unknown status; reading it as undef",
			"plugin", pluginName(d.inst.binary), "rid", rid, "status", int32(resp.GetStatus()))
		st, log = status.Undef, append([]string{reason}, log...)
	}
	return StatusResult{Status: st, Log: log, Label: resp.GetLabel()}
}

// withDefaultTimeout applies d unless ctx already ends sooner.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// isTransport reports whether err means the plugin could not be reached,
// as opposed to the plugin answering with an error.
func isTransport(err error) bool {
	s, ok := grpcstatus.FromError(err)
	if !ok {
		return false
	}
	return s.Code() == codes.Unavailable
}

// isUnimplemented reports whether the plugin does not serve the method.
func isUnimplemented(err error) bool {
	return grpcstatus.Code(err) == codes.Unimplemented
}

// fromRPCError turns the plugin's answer into a plain error carrying the
// plugin's own message; deadlines map to context errors so callers can use
// errors.Is.
func fromRPCError(err error) error {
	s, ok := grpcstatus.FromError(err)
	if !ok {
		return err
	}
	switch s.Code() {
	case codes.DeadlineExceeded:
		return errors.Join(errors.New(s.Message()), context.DeadlineExceeded)
	case codes.Canceled:
		return errors.Join(errors.New(s.Message()), context.Canceled)
	}
	return errors.New(s.Message())
}

func requestToProto(r Request) *proto.ResourceRequest {
	sib := make(map[string]*proto.Keywords, len(r.Siblings))
	for rid, kw := range r.Siblings {
		sib[rid] = &proto.Keywords{Keywords: kw}
	}
	return &proto.ResourceRequest{
		Service: &proto.Service{
			Name: r.Service.Name, Keywords: r.Service.Keywords,
			RunDir: r.Service.RunDir, VarDir: r.Service.VarDir,
		},
		Rid: r.RID, Type: r.Type, Keywords: r.Keywords, Siblings: sib,
	}
}

func infoFromProto(p *proto.InfoResponse) Info {
	info := Info{Version: p.GetVersion(), ServiceKeywords: keywordsFromProto(p.GetServiceKeywords())}
	for _, t := range p.GetTypes() {
		info.Types = append(info.Types, TypeInfo{
			Type: t.GetType(), SectionAliases: t.GetSectionAliases(),
			Keywords: keywordsFromProto(t.GetKeywords()), Help: t.GetHelp(),
		})
	}
	return info
}

func keywordsFromProto(ks []*proto.Keyword) []Keyword {
	out := make([]Keyword, 0, len(ks))
	for _, k := range ks {
		out = append(out, Keyword{
			Name: k.GetName(), Type: k.GetType(), Default: k.GetDefault(), Required: k.GetRequired(),
			Aliases: k.GetAliases(), Help: k.GetHelp(), Candidates: k.GetCandidates(),
		})
	}
	return out
}
