package broker

// DeleteTopics: v1-6
//
// Behavior:
// * Served by the controller; other brokers forward it there (KIP-590),
//   retrying until timeout_ms (at most 60 s) while no controller answers,
//   then REQUEST_TIMED_OUT for every entry as given (forwardIfNotController).
// * By name, or by topic ID from v6. The topic disappears from the very
//   next Metadata response; partition data is deleted by the brokers
//   hosting it as they see the change.
// * delete.topic.enable=false refuses every entry: INVALID_REQUEST at
//   v1-v2, TOPIC_DELETION_DISABLED from v3.
// * Entries are checked as Kafka's controller checks them (planDeletions):
//   neither or both of name and ID, and a name or ID given twice, are
//   INVALID_REQUEST.
//
// Version notes:
// * v4: flexible; v5: error message; v6: topic IDs.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleDeleteTopics(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DeleteTopicsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := c.b.adminContext(r.TimeoutMillis)
	defer cancel()
	if fwd, ok := c.forwardIfNotController(ctx, hdr, r, func(e *kerr.Error) kmsg.Response { return deleteTopicsFailed(r, e) }); ok {
		return now(fwd), nil
	}

	entries := r.Topics
	if r.Version < 6 {
		entries = nil
		for _, n := range r.TopicNames {
			e := kmsg.NewDeleteTopicsRequestTopic()
			e.Topic = kmsg.StringPtr(n)
			entries = append(entries, e)
		}
	}
	add := func(name *string, id [16]byte, code int16, msg string) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID, st.ErrorCode = name, id, code
		if code != 0 && r.Version >= 5 && msg != "" {
			st.ErrorMessage = kmsg.StringPtr(msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	ctl := c.b.controller.Load() // settled by forwardIfNotController
	if ctl == nil || !c.b.cfg.DeleteTopicEnable {
		// The whole request fails, every entry echoed as given (Kafka's
		// controller throws before reading the request).
		code := kerr.NotController.Code
		switch {
		case ctl != nil && r.Version < 3:
			code = kerr.InvalidRequest.Code
		case ctl != nil:
			code = kerr.TopicDeletionDisabled.Code
		}
		for _, e := range entries {
			add(e.Topic, e.TopicID, code, "")
		}
		return now(resp), nil
	}

	for _, d := range planDeletions(c.b.view.Image(), entries) {
		if d.err != nil {
			add(d.name, d.id, d.err.err.Code, d.err.msg)
			continue
		}
		code := int16(0)
		rev, err := ctl.DeleteTopic(ctx, *d.name)
		switch {
		case errors.Is(err, etcd.ErrUnknownTopic):
			code = kerr.UnknownTopicOrPartition.Code
		case errors.Is(err, etcd.ErrNotController):
			code = kerr.NotController.Code
		case err != nil:
			c.b.logger.Error("delete topic in etcd", "topic", *d.name, "err", err)
			code = kerr.UnknownServerError.Code
		default:
			if err := c.b.view.WaitForRevision(ctx, rev); err != nil {
				code = kerr.RequestTimedOut.Code
			} else {
				c.b.logger.Info("deleted topic", "topic", *d.name)
			}
		}
		msg := ""
		if code != 0 {
			msg = kerr.TypedErrorForCode(code).Description
		}
		add(d.name, d.id, code, msg)
	}
	return now(resp), nil
}

// deleteTopicsFailed answers every entry of r, name and ID as given, with
// e and no message, as Kafka's DeleteTopicsRequest.getErrorResponse does.
func deleteTopicsFailed(r *kmsg.DeleteTopicsRequest, e *kerr.Error) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	add := func(name *string, id [16]byte) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID, st.ErrorCode = name, id, e.Code
		resp.Topics = append(resp.Topics, st)
	}
	if r.Version >= 6 {
		for _, t := range r.Topics {
			add(t.Topic, t.TopicID)
		}
	} else {
		for _, n := range r.TopicNames {
			add(kmsg.StringPtr(n), [16]byte{})
		}
	}
	return resp
}

// deletion is one answer of a DeleteTopics request: a topic to delete
// (err nil; name and id are the topic's), or a refusal (the name and id to
// echo).
type deletion struct {
	name *string
	id   [16]byte
	err  *topicError
}

// planDeletions works out a DeleteTopics request's answers against img as
// Kafka's controller does (ControllerApis.deleteTopics): an entry with
// neither name nor ID, or with both, is INVALID_REQUEST; a name or an ID
// given more than once gets one INVALID_REQUEST answer and nothing is
// deleted for it; an unknown ID is UNKNOWN_TOPIC_ID and an unknown name
// UNKNOWN_TOPIC_OR_PARTITION; a name whose topic was also given by ID is
// INVALID_REQUEST and deletes nothing (the ID entry gets no answer of its
// own). Answers follow the request's order (Kafka shuffles them).
func planDeletions(img *etcd.Image, entries []kmsg.DeleteTopicsRequestTopic) []deletion {
	names, ids := map[string]int{}, map[[16]byte]int{}
	for _, e := range entries {
		switch {
		case e.Topic != nil && e.TopicID == [16]byte{}:
			names[*e.Topic]++
		case e.Topic == nil && e.TopicID != [16]byte{}:
			ids[e.TopicID]++
		}
	}
	// A topic given by ID once, and not also by a name given once.
	byID := map[[16]byte]bool{}
	for id, n := range ids {
		if img.TopicsByID[id] != nil && n == 1 {
			byID[id] = true
		}
	}
	clashes := map[[16]byte]bool{} // IDs also named by a name given once
	for name, n := range names {
		if t := img.Topics[name]; t != nil && n == 1 && (byID[t.ID] || ids[t.ID] > 1) {
			clashes[t.ID] = true
		}
	}

	var out []deletion
	answered := map[string]bool{}
	answeredID := map[[16]byte]bool{}
	for _, e := range entries {
		d := deletion{name: e.Topic, id: e.TopicID}
		switch {
		case e.Topic == nil && e.TopicID == [16]byte{}:
			d.err = topicErr(kerr.InvalidRequest, "Neither topic name nor id were specified.")
		case e.Topic != nil && e.TopicID != [16]byte{}:
			d.err = topicErr(kerr.InvalidRequest, "You may not specify both topic name and topic id.")
		case e.Topic != nil:
			name := *e.Topic
			if answered[name] {
				continue
			}
			answered[name] = true
			t := img.Topics[name]
			switch {
			case names[name] > 1:
				d.err = topicErr(kerr.InvalidRequest, "Duplicate topic name.")
			case t == nil:
				d.err = topicErr(kerr.UnknownTopicOrPartition, "%s", kerr.UnknownTopicOrPartition.Description)
			case clashes[t.ID]:
				d.id = t.ID
				d.err = topicErr(kerr.InvalidRequest, "The provided topic name maps to an ID that was already supplied.")
			default:
				d.id = t.ID
			}
		default:
			id := e.TopicID
			if answeredID[id] {
				continue
			}
			answeredID[id] = true
			t := img.TopicsByID[id]
			switch {
			case ids[id] > 1:
				d.err = topicErr(kerr.InvalidRequest, "Duplicate topic id.")
			case t == nil:
				d.err = topicErr(kerr.UnknownTopicID, "%s", kerr.UnknownTopicID.Description)
			case clashes[id]:
				continue
			default:
				d.name = kmsg.StringPtr(t.Name)
			}
		}
		out = append(out, d)
	}
	return out
}
