package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/etcd"
	"github.com/kbroker/kbroker/storage"
)

// A failing disk is contained as Kafka's JBOD handling contains it
// (KIP-112): the first I/O error of a log (a failed write, fsync or rename:
// EIO, ENOSPC, a read-only remount) takes its whole log dir offline. The
// dir's partitions are closed and answer KAFKA_STORAGE_ERROR from then on;
// the broker records the dir and its partitions in its registration
// (BrokerInfo.OfflineDirs), so the controller moves their leaderships to
// in-sync replicas elsewhere and takes these replicas out of the ISRs; new
// partitions go to the other dirs; and the broker keeps serving from them.
// When no log dir is left the broker stops, with one line saying why. An
// offline dir is never marked cleanly shut down, so the next start scans and
// recovers its logs; a restart is how a repaired dir comes back.

// errLogDirOffline answers a partition whose log dir is offline.
var errLogDirOffline = errors.New("broker: the partition's log dir is offline")

// logOptions are the storage options of a partition opened in logDir: its
// failure takes the dir offline.
func (s *partitionSet) logOptions(logDir string) storage.Options {
	return storage.Options{
		Logger: s.b.logger,
		// Called under the log's locks: take the dir offline elsewhere.
		OnFailure: func(err error) { go s.failDir(logDir, err) },
	}
}

// dirOffline reports whether logDir (a cleaned path) is offline.
func (s *partitionSet) dirOffline(logDir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, off := s.mu.offline[logDir]
	return off
}

// partitionOffline reports whether the partition was in a dir that went
// offline; the caller holds s.mu.
func (s *partitionSet) partitionOfflineLocked(tp topicPartition) bool {
	for _, refs := range s.mu.offline {
		for _, r := range refs {
			if r.Topic == tp.topic && r.Partition == tp.partition {
				return true
			}
		}
	}
	return false
}

// failDir takes logDir offline after the I/O error cause; a second failure
// in a dir already offline changes nothing.
func (s *partitionSet) failDir(logDir string, cause error) {
	logDir = filepath.Clean(logDir)
	s.mu.Lock()
	if _, already := s.mu.offline[logDir]; already {
		s.mu.Unlock()
		return
	}
	var lost []*replica.Partition
	refs := map[etcd.PartitionRef]bool{}
	for tp, e := range s.mu.parts {
		p := e.p.Load()
		if p == nil || filepath.Dir(p.Dir) != logDir {
			continue
		}
		lost = append(lost, p)
		delete(s.mu.parts, tp)
		refs[etcd.PartitionRef{Topic: tp.topic, Partition: tp.partition}] = true
	}
	s.mu.offline[logDir] = nil // marks the dir offline while it is listed below
	online := 0
	for _, d := range s.b.cfg.LogDirs {
		if _, off := s.mu.offline[filepath.Clean(d)]; !off {
			online++
		}
	}
	s.mu.Unlock()

	// Partitions on disk not opened yet are offline too; a dir that cannot
	// even be listed leaves those this broker had open.
	if entries, err := os.ReadDir(logDir); err == nil {
		for _, e := range entries {
			if topic, part, ok := storage.ParsePartitionDirName(e.Name()); ok && e.IsDir() {
				refs[etcd.PartitionRef{Topic: topic, Partition: part}] = true
			}
		}
	}
	list := make([]etcd.PartitionRef, 0, len(refs))
	for r := range refs {
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b etcd.PartitionRef) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	s.mu.Lock()
	s.mu.offline[logDir] = list
	s.mu.Unlock()

	s.b.logger.Error("log dir failed; taking it offline: its partitions answer KAFKA_STORAGE_ERROR and their leadership moves to other brokers; restart the broker once the disk is repaired",
		"dir", logDir, "partitions", len(list), "err", cause)
	s.b.metrics.offlineLogDirs.Inc()
	for _, p := range lost {
		s.b.fetchers.Unfollow(p)
		_ = p.Close() // the disk failed: what Close cannot flush, recovery redoes
	}
	if online == 0 {
		s.b.fail(fmt.Errorf("every log dir is offline, the last %s: %w", logDir, cause))
		return
	}
	go s.recordOfflineDirs()
}

// offlineDirs lists the offline log dirs for the registration.
func (s *partitionSet) offlineDirs() []etcd.OfflineDir {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]etcd.OfflineDir, 0, len(s.mu.offline))
	for d, refs := range s.mu.offline {
		out = append(out, etcd.OfflineDir{Dir: d, Partitions: slices.Clone(refs)})
	}
	slices.SortFunc(out, func(a, b etcd.OfflineDir) int {
		switch {
		case a.Dir < b.Dir:
			return -1
		case a.Dir > b.Dir:
			return 1
		}
		return 0
	})
	return out
}

// recordOfflineDirs writes the offline dirs into the broker's registration
// (no lock held), retrying while etcd cannot be reached; a registration
// made later carries them from the start (register).
func (s *partitionSet) recordOfflineDirs() {
	for attempt := 0; ; attempt++ {
		reg := s.b.registration()
		if reg != nil {
			ctx, cancel := context.WithTimeout(s.b.ctx, 5*time.Second)
			_, err := reg.SetOfflineDirs(ctx, s.offlineDirs())
			cancel()
			if err == nil {
				return
			}
			s.b.repeats.Warn("record offline log dirs", "cannot record the offline log dirs in etcd yet; retrying", "err", err)
		}
		select {
		case <-s.b.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
