//go:build linux

package shm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/procwire/procwire/shm"
)

func Example() {
	name := fmt.Sprintf("example-%d", os.Getpid())
	// The first process creates the segment, the others attach it.
	seg, err := shm.Open(name, 4096, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name)
	defer seg.Close()
	seg.WriteAt([]byte("hello"), 0)

	other, err := shm.Attach(name, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer other.Close()
	buf := make([]byte, 5)
	other.ReadAt(buf, 0)
	fmt.Printf("%s, %d bytes, created by this Open: %v\n", buf, other.Size(), seg.Created())
	// Output: hello, 4096 bytes, created by this Open: true
}

func ExampleCreate() {
	name := fmt.Sprintf("example-create-%d", os.Getpid())
	opts := &shm.Options{
		Kind:    shm.KindRaw,
		Version: 1,
		// Init runs before any other process can see the segment.
		Init: func(data []byte) error {
			copy(data, "ready")
			return nil
		},
	}
	seg, err := shm.Create(name, 64, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name)
	defer seg.Close()
	fmt.Printf("%s\n", seg.Data()[:5])

	_, err = shm.Create(name, 64, opts)
	fmt.Println(errors.Is(err, shm.ErrExists))
	_, err = shm.Attach(name, &shm.Options{Kind: shm.KindDict})
	fmt.Println(errors.Is(err, shm.ErrIncompatible))
	// Output:
	// ready
	// true
	// true
}

func ExampleMutex() {
	name := fmt.Sprintf("example-mutex-%d", os.Getpid())
	// Data layout: the lock, then a counter it protects.
	seg, err := shm.Open(name, shm.MutexSize+8, &shm.Options{Kind: shm.KindRaw})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name)
	defer seg.Close()
	mu := shm.MutexAt(seg.Data()[:shm.MutexSize])
	counter := seg.Data()[shm.MutexSize:]

	recovered, err := mu.Lock(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	if recovered {
		// The previous holder died while holding the lock: check and
		// repair what it protects before using it.
	}
	binary.LittleEndian.PutUint64(counter, binary.LittleEndian.Uint64(counter)+1)
	mu.Unlock()
	fmt.Println(binary.LittleEndian.Uint64(counter))
	// Output: 1
}

func ExampleList() {
	infos, err := shm.List()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range infos {
		if in.Err != nil {
			fmt.Printf("%s: %v\n", in.Name, in.Err)
			continue
		}
		fmt.Printf("%s: %v v%d, %d bytes, pid %d\n", in.Name, in.Kind, in.Version, in.Size, in.CreatorPID)
	}
}

func ExampleSegment_Allocate() {
	name := fmt.Sprintf("example-allocate-%d", os.Getpid())
	const size = 8 << 20
	// A sparse segment takes memory for its header and the first 64
	// bytes of its data area, which Init may write, and for nothing else
	// until it is reserved.
	seg, err := shm.Create(name, size, &shm.Options{Sparse: true, Reserve: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name)
	defer seg.Close()
	// Reserve the second half before touching it: a full /dev/shm is
	// then an error here, not a SIGBUS at the copy below.
	if err := seg.Allocate(size/2, size/2); err != nil {
		if errors.Is(err, shm.ErrNoSpace) {
			fmt.Println("no room in /dev/shm")
		}
		fmt.Println(err)
		return
	}
	copy(seg.Data()[size/2:], "second half")

	infos, err := shm.List()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range infos {
		if in.Name == name {
			fmt.Printf("size %d MiB, holds about %d MiB\n", in.Size>>20, (in.Held+1<<19)>>20)
		}
	}
	// Output: size 8 MiB, holds about 4 MiB
}
